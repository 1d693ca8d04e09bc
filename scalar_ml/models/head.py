"""What a network's output must look like for a task: the number of outputs, a final activation, per site.

A task declares its :class:`Head` (:meth:`scalar_ml.tasks.Task.head`); the search space builds
networks that end in it and training checks that a network matches it. No torch import here.

>>> Head(outputs=1, activation="sigmoid")
Head(outputs=1, activation='sigmoid', per_site=False)
>>> Head(outputs=2).describe()
'2 outputs per configuration'
>>> Head(outputs=1, activation="sigmoid", per_site=True).describe()
'1 output channel per site, then sigmoid'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Head"]


@dataclass(frozen=True)
class Head:
    """``outputs`` values per configuration (or channels per site when ``per_site``), then ``activation``."""

    outputs: int
    activation: str | None = None
    per_site: bool = False

    def describe(self) -> str:
        """A short phrase for error messages."""
        unit = "output channel" if self.per_site else "output"
        plural = "" if self.outputs == 1 else "s"
        where = "per site" if self.per_site else "per configuration"
        tail = f", then {self.activation}" if self.activation else ""
        return f"{self.outputs} {unit}{plural} {where}{tail}"
