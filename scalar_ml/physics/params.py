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
from dataclasses import asdict, dataclass


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
