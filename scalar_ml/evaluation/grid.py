r"""Evaluation grids: lattice sizes × physics points (η, λ, μ) × worm counts (SPEC §5).

A grid is a config node (``conf/grid/<name>.yaml``)::

    task: counting                       # observables | detection | counting
    lattices: [8x8, 16x16, 32x32, 64x64] # "NtxNx" (time first, SPEC §1) or [nt, nx]
    eta: [4.01, 4.04, 4.25]              # the points are the product eta × lam × mu ...
    lam: [1.0]
    mu: [1.0, 1.25, 1.5]
    points: null                         # ... or an explicit list of {eta, lam, mu}
    worms: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    n_configs: 256                       # configurations per (lattice, point)
    seed: 1000                           # Monte Carlo / insertion seed of the test data
    max_worm_length: null                # nominal worm length (null: Nt + Nx of the test lattice)

One **cell** is ``(lattice, point, worms)``. What a cell's test set holds (see
:mod:`scalar_ml.evaluation.datasets`):

- ``observables``: the ``n_configs`` configurations of the point's ensemble, targets ``(n, |φ|²)``;
  ``worms`` must be ``[0]``;
- ``detection``: the same ensemble with ``M = worms`` open worms inserted into a seeded half
  (``⌊n/2⌋``), label ``any div k ≠ 0``; every ``M >= 1``;
- ``counting``: every configuration gets ``M`` open worms, target ``½ Σ_x |div_x k| = M``.

The default grids reproduce the seed's test sets: counting 9 (η, μ) × 4 sizes × 11 worm counts = 396
cells, detection 9 × 4, observables μ across the onset on 60×4, 100×5, 125×8, 200×10 and squares.

>>> g = Grid.from_config({"task": "counting", "lattices": ["8x8", [16, 16]], "eta": [4.01, 4.25],
...                       "lam": [1.0], "mu": [1.0], "worms": [0, 5], "n_configs": 8, "seed": 3})
>>> len(g.cells()), g.cells()[0]
(8, Cell(lattice=Lattice(nt=8, nx=8), params=PhysicsParams(eta=4.01, lam=1.0, mu=1.0), worms=0))
>>> Grid.from_config({"task": "counting", "lattices": ["4x4"], "eta": [4.01], "lam": [1.0],
...                   "mu": [1.0], "worms": [9], "n_configs": 8, "seed": 3})
Traceback (most recent call last):
...
ValueError: grid.worms on 4x4: 9 open worms need 18 distinct end points but a 4x4 lattice has only 16 sites (at most 8 worms fit)
"""

from __future__ import annotations

import itertools
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from scalar_ml.config import to_plain
from scalar_ml.data.cache import EnsembleRequest
from scalar_ml.data.violations import check_worms_fit
from scalar_ml.physics.params import Lattice, PhysicsParams

__all__ = [
    "GRID_DIR",
    "TASKS",
    "Cell",
    "Grid",
    "format_lattice",
    "list_grids",
    "load_grid",
    "parse_lattice",
]

#: Tasks a grid can serve (the order of SPEC §5).
TASKS: tuple[str, ...] = ("observables", "detection", "counting")

#: Where the named grid configs live.
GRID_DIR: Path = Path(__file__).resolve().parents[2] / "conf" / "grid"

_KEYS = {
    "task",
    "lattices",
    "eta",
    "lam",
    "mu",
    "points",
    "worms",
    "n_configs",
    "seed",
    "max_worm_length",
    "name",
    "description",
}
_LATTICE_RE = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$")


class Cell(NamedTuple):
    """One grid cell: a test lattice, a physics point and a worm count (0 for observables)."""

    lattice: Lattice
    params: PhysicsParams
    worms: int


def parse_lattice(value: Any) -> Lattice:
    """``"60x4"`` / ``[60, 4]`` / ``{nt: 60, nx: 4}`` / a :class:`Lattice` -> a validated ``Lattice``.

    >>> parse_lattice("100x5"), parse_lattice([8, 8])
    (Lattice(nt=100, nx=5), Lattice(nt=8, nx=8))
    """
    if isinstance(value, Lattice):
        lat = value
    elif isinstance(value, str):
        m = _LATTICE_RE.match(value)
        if not m:
            raise ValueError(f"a lattice must look like '60x4' (Nt x Nx), got {value!r}")
        lat = Lattice(int(m.group(1)), int(m.group(2)))
    elif isinstance(value, Mapping) and set(value) == {"nt", "nx"}:
        lat = Lattice(value["nt"], value["nx"])
    elif isinstance(value, Sequence) and len(value) == 2:
        lat = Lattice(value[0], value[1])
    else:
        raise ValueError(f"a lattice must be 'NtxNx', [nt, nx] or {{nt, nx}}, got {value!r}")
    if isinstance(lat.nt, numbers.Integral) and isinstance(lat.nx, numbers.Integral):
        lat = Lattice(int(lat.nt), int(lat.nx))
    lat.validate()
    return lat


def format_lattice(lattice: Lattice | Sequence[int]) -> str:
    """``Lattice(60, 4)`` or ``(60, 4)`` -> ``"60x4"``."""
    if isinstance(lattice, Lattice):
        return f"{lattice.nt}x{lattice.nx}"
    return f"{int(lattice[0])}x{int(lattice[1])}"


def _number_list(name: str, value: Any) -> list[float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(f"grid.{name} must be a non-empty list of numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(f"grid.{name} must hold numbers, got {v!r}")
        out.append(float(v))
    if len(set(out)) != len(out):
        raise ValueError(f"grid.{name} must not repeat values, got {out}")
    return out


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"grid.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Grid:
    """A validated evaluation grid (see the module docstring for the config format)."""

    task: str
    lattices: tuple[Lattice, ...]
    points: tuple[PhysicsParams, ...]
    worms: tuple[int, ...]
    n_configs: int
    seed: int
    max_worm_length: int | None = None
    name: str = ""

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | Any, *, name: str | None = None) -> Grid:
        """Validate a grid config node (a mapping or a DictConfig); ``ValueError`` on any bad value."""
        raw = to_plain(node)
        if not isinstance(raw, Mapping):
            raise ValueError(f"a grid must be a mapping, got {raw!r}")
        unknown = set(raw) - _KEYS
        if unknown:
            raise ValueError(f"unknown grid key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
        task = raw.get("task")
        if task not in TASKS:
            raise ValueError(f"grid.task must be one of {', '.join(TASKS)}, got {task!r}")
        lats = raw.get("lattices")
        if not isinstance(lats, Sequence) or isinstance(lats, str) or not lats:
            raise ValueError(
                f"grid.lattices must be a non-empty list like ['8x8', '16x16'], got {lats!r}"
            )
        lattices = tuple(parse_lattice(v) for v in lats)
        if len(set(lattices)) != len(lattices):
            raise ValueError(
                f"grid.lattices must not repeat sizes, got {[format_lattice(x) for x in lattices]}"
            )

        if raw.get("points") is not None:
            pts_raw = raw["points"]
            if not isinstance(pts_raw, Sequence) or isinstance(pts_raw, str) or not pts_raw:
                raise ValueError(
                    f"grid.points must be a non-empty list of {{eta, lam, mu}}, got {pts_raw!r}"
                )
            points = []
            for p in pts_raw:
                if not isinstance(p, Mapping) or set(p) != {"eta", "lam", "mu"}:
                    raise ValueError(f"grid.points entries must be {{eta, lam, mu}}, got {p!r}")
                points.append(PhysicsParams(float(p["eta"]), float(p["lam"]), float(p["mu"])))
        else:
            for key in ("eta", "lam", "mu"):
                if raw.get(key) is None:
                    raise ValueError(f"grid.{key} is required (or give grid.points)")
            points = [
                PhysicsParams(e, la, m)
                for e, la, m in itertools.product(
                    _number_list("eta", raw["eta"]),
                    _number_list("lam", raw["lam"]),
                    _number_list("mu", raw["mu"]),
                )
            ]
        for p in points:
            try:
                p.validate()
            except ValueError as exc:
                raise ValueError(f"grid point {p.as_dict()}: {exc}") from exc
        if len(set(points)) != len(points):
            raise ValueError("grid.points must be distinct")

        worms_raw = raw.get("worms", [0] if task == "observables" else None)
        if isinstance(worms_raw, numbers.Integral) and not isinstance(worms_raw, bool):
            worms_raw = [worms_raw]
        if not isinstance(worms_raw, Sequence) or isinstance(worms_raw, str) or not worms_raw:
            raise ValueError(f"grid.worms must be a non-empty list of integers, got {worms_raw!r}")
        worms = tuple(_int("worms[]", w, 0) for w in worms_raw)
        if len(set(worms)) != len(worms):
            raise ValueError(f"grid.worms must not repeat values, got {list(worms)}")
        if task == "observables" and worms != (0,):
            raise ValueError(f"observables grids take no worms (worms: [0]), got {list(worms)}")
        if task == "detection" and min(worms) < 1:
            raise ValueError(
                "detection grids need worm counts >= 1 (the violated half of each cell gets M worms, "
                f"the other half none), got {list(worms)}"
            )
        for lat in lattices:
            try:
                check_worms_fit(list(worms), lat.nt, lat.nx)
            except ValueError as exc:
                raise ValueError(f"grid.worms on {format_lattice(lat)}: {exc}") from exc

        n_configs = _int("n_configs", raw.get("n_configs"), 2 if task == "detection" else 1)
        seed = _int("seed", raw.get("seed"), 0)
        mwl = raw.get("max_worm_length")
        max_worm_length = None if mwl is None else _int("max_worm_length", mwl, 1)
        return cls(
            task=str(task),
            lattices=lattices,
            points=tuple(points),
            worms=worms,
            n_configs=n_configs,
            seed=seed,
            max_worm_length=max_worm_length,
            name=str(name if name is not None else raw.get("name") or ""),
        )

    def cells(self) -> list[Cell]:
        """All cells, lattice-major, then point, then worm count."""
        return [Cell(lat, p, w) for lat in self.lattices for p in self.points for w in self.worms]

    def blocks(self) -> list[tuple[Lattice, PhysicsParams]]:
        """The (lattice, point) pairs: one Monte Carlo ensemble each."""
        return [(lat, p) for lat in self.lattices for p in self.points]

    def validate_sampler(self, sampler_options: Mapping[str, Any]) -> None:
        """Check every ensemble request (params, lattice, size, seed, sampler options), no disk access."""
        for lat, p in self.blocks():
            try:
                EnsembleRequest.create(p, lat, self.n_configs, self.seed, **dict(sampler_options))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"grid cell {format_lattice(lat)} {p.as_dict()}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """Plain description (JSON/YAML friendly)."""
        return {
            "name": self.name,
            "task": self.task,
            "lattices": [format_lattice(x) for x in self.lattices],
            "points": [p.as_dict() for p in self.points],
            "worms": list(self.worms),
            "n_configs": self.n_configs,
            "seed": self.seed,
            "max_worm_length": self.max_worm_length,
            "n_cells": len(self.cells()),
        }


def list_grids(directory: Path | None = None) -> list[str]:
    """Names of the grid configs in ``conf/grid``."""
    d = directory or GRID_DIR
    return sorted(p.stem for p in d.glob("*.yaml"))


def load_grid(name: str, *, directory: Path | None = None, overrides: Iterable[str] = ()) -> Grid:
    """Load ``conf/grid/<name>.yaml`` (with optional dotlist ``overrides`` such as ``n_configs=32``)."""
    from omegaconf import OmegaConf

    d = directory or GRID_DIR
    path = d / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown grid {name!r}; valid grids: {', '.join(list_grids(d))}")
    node = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))
    return Grid.from_config(node, name=name)
