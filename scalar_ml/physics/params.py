"""Validated value objects for the physics and the lattice.

Conventions (SPEC §1-2): the lattice is ``Nt × Nx`` (time first), periodic in both directions,
volume ``V = Nt·Nx``. The action has hopping parameter ``eta = 2D + m² = 4 + m²``, quartic
coupling ``lam`` and chemical potential ``mu`` (on temporal links only).

>>> PhysicsParams(eta=4.01, lam=1.0, mu=1.0).validate()
>>> Lattice(nt=60, nx=4).volume
240
>>> PhysicsParams(eta=4.01, lam=0.0, mu=0.5).validate()
Traceback (most recent call last):
...
ValueError: the free theory (lam = 0) does not exist at eta = 4.01, mu = 0.5: it needs eta - 2 - 2 cosh(mu) > 0, got -0.2452...
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

_LATTICE_RE = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$")


@dataclass(frozen=True)
class PhysicsParams:
    """Couplings ``(eta, lam, mu)`` of the lattice action S (SPEC §2)."""

    eta: float
    lam: float
    mu: float

    def validate(self) -> None:
        """Raise ``ValueError`` if the partition function does not exist at these couplings.

        ``eta > 0`` and ``lam >= 0`` are required; at ``lam = 0`` the Gaussian integral converges only
        while the lowest mode ``eta - 2 - 2 cosh(mu)`` is positive.
        """
        for name in ("eta", "lam", "mu"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.eta <= 0:
            raise ValueError(f"eta must be > 0, got eta = {self.eta}")
        if self.lam < 0:
            raise ValueError(
                f"lam must be >= 0 (the action must be bounded below), got lam = {self.lam}"
            )
        if self.lam == 0:
            gap = self.eta - 2.0 - 2.0 * math.cosh(self.mu)
            if gap <= 0:
                raise ValueError(
                    f"the free theory (lam = 0) does not exist at eta = {self.eta}, mu = {self.mu}: "
                    f"it needs eta - 2 - 2 cosh(mu) > 0, got {gap:.6g}"
                )

    def as_dict(self) -> dict[str, float]:
        """Plain ``{"eta", "lam", "mu"}`` floats (JSON- and cache-key friendly)."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Lattice:
    """A periodic ``nt × nx`` lattice (time first)."""

    nt: int
    nx: int

    def validate(self) -> None:
        """Raise ``ValueError`` unless both extents are integers >= 2."""
        for name in ("nt", "nx"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"lattice.{name} must be an integer, got {value!r}")
            if value < 2:
                raise ValueError(f"lattice.{name} must be >= 2, got {value}")

    @property
    def volume(self) -> int:
        """Number of sites ``V = nt·nx``."""
        return self.nt * self.nx

    @property
    def shape(self) -> tuple[int, int]:
        """``(nt, nx)``."""
        return (self.nt, self.nx)

    def __str__(self) -> str:
        return f"{self.nt}x{self.nx}"

    @classmethod
    def parse(cls, value: Any) -> Lattice:
        """``"60x4"`` / ``[60, 4]`` / ``{nt: 60, nx: 4}`` / a ``Lattice`` -> a validated ``Lattice``.

        >>> Lattice.parse("100x5"), Lattice.parse([8, 8]), Lattice.parse({"nt": 60, "nx": 4})
        (Lattice(nt=100, nx=5), Lattice(nt=8, nx=8), Lattice(nt=60, nx=4))
        >>> Lattice.parse("8 by 8")
        Traceback (most recent call last):
        ...
        ValueError: a lattice must look like '60x4' (Nt x Nx), [nt, nx] or {nt, nx}, got '8 by 8'
        """
        if isinstance(value, Lattice):
            lat = value
        elif isinstance(value, str):
            m = _LATTICE_RE.match(value)
            if not m:
                raise ValueError(
                    f"a lattice must look like '60x4' (Nt x Nx), [nt, nx] or {{nt, nx}}, got {value!r}"
                )
            lat = cls(int(m.group(1)), int(m.group(2)))
        elif isinstance(value, Mapping):
            if set(value) != {"nt", "nx"}:
                raise ValueError(
                    f"a lattice mapping must have exactly the keys nt, nx, got {dict(value)!r}"
                )
            lat = cls(value["nt"], value["nx"])
        elif isinstance(value, Sequence) and len(value) == 2:
            lat = cls(value[0], value[1])
        else:
            raise ValueError(
                f"a lattice must look like '60x4' (Nt x Nx), [nt, nx] or {{nt, nx}}, got {value!r}"
            )
        if isinstance(lat.nt, numbers.Integral) and isinstance(lat.nx, numbers.Integral):
            lat = cls(int(lat.nt), int(lat.nx))
        lat.validate()
        return lat


def validate_point(params: object, lattice: object, *, error: type[Exception] = ValueError) -> None:
    """Check a physics point and a lattice before any work: types, then values.

    Raises ``error`` (``ValueError`` unless the caller prefers ``TypeError``) when ``params`` is not a
    :class:`PhysicsParams` or ``lattice`` not a :class:`Lattice`, and ``ValueError`` from their
    ``validate()`` for bad values.

    >>> validate_point(PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8))
    >>> validate_point({"eta": 4.01}, Lattice(8, 8))
    Traceback (most recent call last):
    ...
    ValueError: params must be a PhysicsParams, got dict
    """
    if not isinstance(params, PhysicsParams):
        raise error(f"params must be a PhysicsParams, got {type(params).__name__}")
    if not isinstance(lattice, Lattice):
        raise error(f"lattice must be a Lattice, got {type(lattice).__name__}")
    params.validate()
    lattice.validate()
