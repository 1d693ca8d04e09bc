"""Validated value objects for the physics and the lattice.

Conventions (SPEC §1-3): the lattice is ``N_0 × N_1 × … × N_{d-1}`` in ``d = 2, 3, 4`` dimensions,
time first (axis 0 carries the chemical potential), periodic in every direction, volume
``V = Π_ν N_ν``. In 2D it is ``Nt × Nx`` (``nt``, ``nx``; "60x4" means Nt = 60, Nx = 4). The
action has hopping parameter ``eta = 2d + m²`` (``4 + m²`` in 2D), quartic coupling ``lam`` and
chemical potential ``mu`` (on temporal links only). Whether the free theory (``lam = 0``) exists
depends on ``d``: its lowest mode ``eta - 2(d-1) - 2 cosh(mu)`` must be positive.

>>> PhysicsParams(eta=4.01, lam=1.0, mu=1.0).validate()
>>> Lattice(nt=60, nx=4).volume
240
>>> Lattice(8, 8, 8), Lattice(8, 8, 8).dims, Lattice(8, 8, 8).volume, str(Lattice(4, 4, 4, 4))
(Lattice(shape=(8, 8, 8)), 3, 512, '4x4x4x4')
>>> PhysicsParams(eta=4.01, lam=0.0, mu=0.5).validate()
Traceback (most recent call last):
...
ValueError: the free theory (lam = 0) does not exist at eta = 4.01, mu = 0.5: it needs eta - 2 - 2 cosh(mu) > 0, got -0.2452...
>>> PhysicsParams(eta=6.01, lam=0.0, mu=0.5).validate(dims=3)
Traceback (most recent call last):
...
ValueError: the free theory (lam = 0) does not exist at eta = 6.01, mu = 0.5 in 3 dimensions: it needs eta - 4 - 2 cosh(mu) > 0, got -0.2452...
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DIMENSIONS", "Lattice", "PhysicsParams", "validate_point"]

#: The lattice dimensions d the package supports (time + d - 1 space directions).
DIMENSIONS: tuple[int, ...] = (2, 3, 4)

_LATTICE_RE = re.compile(r"^\s*\d+(\s*[x×]\s*\d+)+\s*$")
_LATTICE_FORMS = "'60x4' (Nt x Nx) or '8x8x8' (time first), [nt, nx, ...], {nt, nx} or {shape}"


@dataclass(frozen=True)
class PhysicsParams:
    """Couplings ``(eta, lam, mu)`` of the lattice action S (SPEC §2)."""

    eta: float
    lam: float
    mu: float

    def validate(self, dims: int = 2) -> None:
        """Raise ``ValueError`` if the partition function does not exist at these couplings.

        ``eta > 0`` and ``lam >= 0`` are required; at ``lam = 0`` the Gaussian integral converges only
        while the lowest mode ``eta - 2(dims - 1) - 2 cosh(mu)`` is positive (``dims``: the lattice
        dimension d, 2 by default).
        """
        for name in ("eta", "lam", "mu"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if dims not in DIMENSIONS:
            raise ValueError(f"dims must be one of {DIMENSIONS}, got {dims!r}")
        if self.eta <= 0:
            raise ValueError(f"eta must be > 0, got eta = {self.eta}")
        if self.lam < 0:
            raise ValueError(
                f"lam must be >= 0 (the action must be bounded below), got lam = {self.lam}"
            )
        if self.lam == 0:
            gap = self.eta - 2.0 * (dims - 1) - 2.0 * math.cosh(self.mu)
            if gap <= 0:
                where = "" if dims == 2 else f" in {dims} dimensions"
                raise ValueError(
                    f"the free theory (lam = 0) does not exist at eta = {self.eta}, mu = {self.mu}"
                    f"{where}: it needs eta - {2 * (dims - 1)} - 2 cosh(mu) > 0, got {gap:.6g}"
                )

    def as_dict(self) -> dict[str, float]:
        """Plain ``{"eta", "lam", "mu"}`` floats (JSON- and cache-key friendly)."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True, init=False, repr=False)
class Lattice:
    """A periodic ``N_0 × … × N_{d-1}`` lattice, time first (``nt × nx`` in 2D).

    Built from its extents, ``Lattice(60, 4)``, ``Lattice(8, 8, 8)``, or by keywords,
    ``Lattice(nt=60, nx=4)`` (2D) and ``Lattice(shape=(8, 8, 8))``. Two lattices are equal when
    their shapes are. Values are checked by :meth:`validate` (and by :meth:`parse`).
    """

    shape: tuple[int, ...]

    def __init__(
        self,
        *extents: Any,
        nt: Any = None,
        nx: Any = None,
        shape: Sequence[Any] | None = None,
    ) -> None:
        given = [bool(extents), nt is not None or nx is not None, shape is not None]
        if sum(given) != 1:
            raise TypeError("give a lattice's extents, or nt and nx, or shape (exactly one form)")
        if extents:
            value = tuple(extents)
        elif shape is not None:
            if isinstance(shape, str | bytes) or not isinstance(shape, Sequence):
                raise TypeError(f"shape must be a sequence of extents, got {shape!r}")
            value = tuple(shape)
        else:
            if nt is None or nx is None:
                raise TypeError("a 2D lattice needs both nt and nx")
            value = (nt, nx)
        object.__setattr__(self, "shape", value)

    def validate(self) -> None:
        """Raise ``ValueError`` unless it has 2 to 4 extents, each an integer >= 2."""
        if len(self.shape) not in DIMENSIONS:
            raise ValueError(
                f"a lattice has {', '.join(map(str, DIMENSIONS[:-1]))} or {DIMENSIONS[-1]} "
                f"dimensions, got {len(self.shape)}: {self.shape!r}"
            )
        for axis, value in enumerate(self.shape):
            name = (
                ("lattice.nt", "lattice.nx")[axis] if self.dims == 2 else f"lattice.shape[{axis}]"
            )
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < 2:
                raise ValueError(f"{name} must be >= 2, got {value}")

    @property
    def dims(self) -> int:
        """The dimension d (number of directions, time included)."""
        return len(self.shape)

    @property
    def nt(self) -> int:
        """The temporal extent ``N_0``."""
        return self.shape[0]

    @property
    def nx(self) -> int:
        """The spatial extent of a 2D lattice (``ValueError`` in other dimensions: use ``shape``)."""
        if self.dims != 2:
            raise ValueError(
                f"nx is the spatial extent of a 2D lattice; the {self} lattice has spatial "
                f"extents {self.shape[1:]} (use lattice.shape)"
            )
        return self.shape[1]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The extents of the space directions ``(N_1, …, N_{d-1})``."""
        return self.shape[1:]

    @property
    def volume(self) -> int:
        """Number of sites ``V = Π_ν N_ν``."""
        return math.prod(self.shape)

    def as_dict(self) -> dict[str, Any]:
        """``{"nt": …, "nx": …}`` in 2D, ``{"shape": [...]}`` otherwise (metadata, descriptions).

        >>> Lattice(60, 4).as_dict(), Lattice(8, 8, 8).as_dict()
        ({'nt': 60, 'nx': 4}, {'shape': [8, 8, 8]})
        """
        if self.dims == 2:
            return {"nt": self.shape[0], "nx": self.shape[1]}
        return {"shape": list(self.shape)}

    def __str__(self) -> str:
        return "x".join(str(n) for n in self.shape)

    def __repr__(self) -> str:
        if len(self.shape) == 2:
            return f"Lattice(nt={self.shape[0]!r}, nx={self.shape[1]!r})"
        return f"Lattice(shape={self.shape!r})"

    @classmethod
    def parse(cls, value: Any) -> Lattice:
        """``"60x4"`` / ``"8x8x8"`` / ``[60, 4]`` / ``{nt: 60, nx: 4}`` / ``{shape: [8, 8, 8]}`` /
        a ``Lattice`` -> a validated ``Lattice``.

        In a mapping, keys with value ``None`` count as absent (a composed Hydra config holds every
        key of the lattice schema); it must then hold either ``nt`` and ``nx`` or ``shape``.

        >>> Lattice.parse("100x5"), Lattice.parse([8, 8]), Lattice.parse({"nt": 60, "nx": 4})
        (Lattice(nt=100, nx=5), Lattice(nt=8, nx=8), Lattice(nt=60, nx=4))
        >>> Lattice.parse("4x4x4x4"), Lattice.parse({"nt": None, "nx": None, "shape": [12, 8, 8]})
        (Lattice(shape=(4, 4, 4, 4)), Lattice(shape=(12, 8, 8)))
        >>> Lattice.parse("8 by 8")
        Traceback (most recent call last):
        ...
        ValueError: a lattice must look like '60x4' (Nt x Nx) or '8x8x8' (time first), [nt, nx, ...], {nt, nx} or {shape}, got '8 by 8'
        >>> Lattice.parse({"nt": 8, "nx": 8, "shape": [16, 16, 16]})
        Traceback (most recent call last):
        ...
        ValueError: a lattice is given either by nt and nx (2D) or by shape, got nt = 8, nx = 8 and shape = [16, 16, 16] (select a d-dimensional lattice with lattice=16x16x16, or set lattice.nt=null lattice.nx=null)
        """
        if isinstance(value, Lattice):
            lat = value
        elif isinstance(value, str):
            if not _LATTICE_RE.match(value):
                raise ValueError(f"a lattice must look like {_LATTICE_FORMS}, got {value!r}")
            lat = cls(*(int(n) for n in re.split(r"\s*[x×]\s*", value.strip())))
        elif isinstance(value, Mapping):
            given = {k: v for k, v in value.items() if v is not None}
            if "shape" in given and ({"nt", "nx"} & set(given)):
                raise ValueError(
                    "a lattice is given either by nt and nx (2D) or by shape, got "
                    f"nt = {given.get('nt')}, nx = {given.get('nx')} and shape = {given['shape']} "
                    f"(select a d-dimensional lattice with lattice="
                    f"{'x'.join(str(n) for n in given['shape'])}, or set lattice.nt=null "
                    "lattice.nx=null)"
                )
            if set(given) == {"shape"}:
                shape = given["shape"]
                if isinstance(shape, str) or not isinstance(shape, Sequence):
                    raise ValueError(f"lattice.shape must be a list of extents, got {shape!r}")
                lat = cls(shape=tuple(shape))
            elif set(given) == {"nt", "nx"}:
                lat = cls(given["nt"], given["nx"])
            else:
                raise ValueError(
                    "a lattice mapping must have exactly the keys nt, nx (2D) or shape, "
                    f"got {dict(value)!r}"
                )
        elif isinstance(value, Sequence) and len(value) in DIMENSIONS:
            lat = cls(*value)
        else:
            raise ValueError(f"a lattice must look like {_LATTICE_FORMS}, got {value!r}")
        if all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in lat.shape):
            lat = cls(*(int(n) for n in lat.shape))
        lat.validate()
        return lat


def validate_point(params: object, lattice: object, *, error: type[Exception] = ValueError) -> None:
    """Check a physics point and a lattice before any work: types, then values.

    Raises ``error`` (``ValueError`` unless the caller prefers ``TypeError``) when ``params`` is not a
    :class:`PhysicsParams` or ``lattice`` not a :class:`Lattice`, and ``ValueError`` from their
    ``validate()`` for bad values (the existence of the free theory is judged in the lattice's
    dimension).

    >>> validate_point(PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8))
    >>> validate_point({"eta": 4.01}, Lattice(8, 8))
    Traceback (most recent call last):
    ...
    ValueError: params must be a PhysicsParams, got dict
    >>> validate_point(PhysicsParams(6.5, 0.0, 0.3), Lattice(4, 4, 4, 4))
    Traceback (most recent call last):
    ...
    ValueError: the free theory (lam = 0) does not exist at eta = 6.5, mu = 0.3 in 4 dimensions: it needs eta - 6 - 2 cosh(mu) > 0, got -1.59...
    """
    if not isinstance(params, PhysicsParams):
        raise error(f"params must be a PhysicsParams, got {type(params).__name__}")
    if not isinstance(lattice, Lattice):
        raise error(f"lattice must be a Lattice, got {type(lattice).__name__}")
    lattice.validate()
    params.validate(lattice.dims)
