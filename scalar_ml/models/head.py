"""What a network's output looks like, independent of any task: :class:`Head`.

A head is the number of outputs, an optional final pointwise activation and where the outputs
live: one vector per configuration (``per_site = False``, output ``(B, outputs)``) or one vector per
lattice site (``per_site = True``, output ``(B, outputs, Nt, Nx)`` on the input's lattice). It is what
the architecture search (:mod:`scalar_ml.search.space`) needs to finish a network, and maps onto the
model spec's ``output`` key (:data:`scalar_ml.models.spec.OUTPUTS`) and its last layers: the output
layer gives ``outputs`` features (or channels per site), followed by ``{type: activation, name:
<activation>}`` when ``activation`` is set. A final ``sigmoid`` makes
:meth:`~scalar_ml.models.builder.LatticeNet.logits` available (for ``BCEWithLogitsLoss``).

>>> Head(1, "sigmoid", per_site=True).output
'site'
>>> Head.parse({"outputs": 2})
Head(outputs=2, activation=None, per_site=False)
>>> Head(1, "sigmoid", per_site=True).describe()
'1 output channel per site, then sigmoid'

>>> Head(0)
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: head: 'outputs' must be a positive integer, got 0
>>> Head.parse({"outputs": 1, "per_sites": True})
Traceback (most recent call last):
...
scalar_ml.models.spec.SpecError: head: unknown key(s) ['per_sites']; allowed: outputs, activation, per_site
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from scalar_ml.models.layers import ACTIVATIONS
from scalar_ml.models.spec import OUTPUTS, SpecError, to_plain

__all__ = ["Head"]


@dataclass(frozen=True)
class Head:
    """``outputs`` features per configuration (or per site when ``per_site``), then ``activation``."""

    outputs: int
    activation: str | None = None
    per_site: bool = False

    def __post_init__(self) -> None:
        if (
            isinstance(self.outputs, bool)
            or not isinstance(self.outputs, numbers.Integral)
            or self.outputs < 1
        ):
            raise SpecError(f"head: 'outputs' must be a positive integer, got {self.outputs!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise SpecError(
                f"head: unknown activation {self.activation!r}; known: {', '.join(ACTIVATIONS)}"
            )
        if not isinstance(self.per_site, bool):
            raise SpecError(f"head: 'per_site' must be true or false, got {self.per_site!r}")

    def describe(self) -> str:
        """A short phrase for error messages, e.g. ``'1 output channel per site, then sigmoid'``."""
        unit = "output channel" if self.per_site else "output"
        plural = "" if self.outputs == 1 else "s"
        where = "per site" if self.per_site else "per configuration"
        tail = f", then {self.activation}" if self.activation else ""
        return f"{self.outputs} {unit}{plural} {where}{tail}"

    @property
    def output(self) -> str:
        """The model spec's ``output``: ``'site'`` or ``'configuration'``."""
        return OUTPUTS[1] if self.per_site else OUTPUTS[0]

    @classmethod
    def parse(cls, value: Head | Mapping[str, Any]) -> Head:
        """A :class:`Head` from itself or a mapping (e.g. a Hydra ``DictConfig``) of its fields."""
        if isinstance(value, Head):
            return value
        plain = to_plain(value)
        if not isinstance(plain, Mapping):
            raise SpecError(f"head must be a mapping with 'outputs', got {value!r}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(plain) - set(allowed))
        if unknown:
            raise SpecError(f"head: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")
        if "outputs" not in plain:
            raise SpecError("head: missing required key 'outputs'")
        return cls(**plain)
