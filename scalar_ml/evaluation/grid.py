r"""Evaluation grids: lattice sizes × physics points × worm counts (SPEC §5).

A grid is a config node (``conf/grid/<name>.yaml``)::

    task: counting                       # a task name (scalar_ml.tasks.task_names())
    lattices: [8x8, 16x16, 32x32, 64x64] # "NtxNx" (time first, SPEC §1) or [nt, nx]; d = 3, 4
                                         # dimensions: "8x8x8", [8, 8, 8], {shape: [...]}
    eta: [4.01, 4.04, 4.25]              # the points are the product over the theory's
    lam: [1.0]                           # parameters (eta × lam × mu) ...
    mu: [1.0, 1.25, 1.5]
    points: null                         # ... or an explicit list of {eta, lam, mu}
    worms: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    n_configs: 256                       # configurations per (lattice, point)
    seed: 1000                           # Monte Carlo / insertion seed of the test data
    max_worm_length: null                # nominal worm length (null: Nt + Nx of the test lattice)

One **cell** is ``(lattice, point, worms)``. The task decides what a cell's test set holds
(:mod:`scalar_ml.evaluation.datasets`) and which worm counts it accepts (``[0]`` for a task on closed
configurations; ``>= 1`` for detection, whose cells put ``M`` worms into half the configurations).
The parameter keys are the theory's (:meth:`scalar_ml.physics.theory.Theory.parameter_names`).

The default grids reproduce the seed's test sets: counting 9 (η, μ) × 4 sizes × 11 worm counts = 396
cells, detection 9 × 4, observables μ across the onset on 60×4, 100×5, 125×8, 200×10 and squares.

>>> task = load_grid("counting_small").task  # the task a shipped grid declares
>>> g = Grid.from_config({"task": task, "lattices": ["8x8", [16, 16]], "eta": [4.01, 4.25],
...                       "lam": [1.0], "mu": [1.0], "worms": [0, 5], "n_configs": 8, "seed": 3})
>>> len(g.cells()), g.cells()[0]
(8, Cell(lattice=Lattice(nt=8, nx=8), params=PhysicsParams(eta=4.01, lam=1.0, mu=1.0), worms=0))
>>> Grid.from_config({"task": task, "lattices": ["4x4"], "eta": [4.01], "lam": [1.0],
...                   "mu": [1.0], "worms": [9], "n_configs": 8, "seed": 3})
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: grid.worms on 4x4: 9 open worms need 18 distinct end points but a 4x4 lattice has only 16 sites (at most 8 worms fit)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from scalar_ml.config import ConfigError, integer, number_list, to_plain
from scalar_ml.data.cache import EnsembleRequest
from scalar_ml.paths import CONF_DIR
from scalar_ml.physics.params import Lattice, PhysicsParams
from scalar_ml.physics.theory import get_theory
from scalar_ml.tasks import get_task

__all__ = [
    "GRID_DIR",
    "Cell",
    "Grid",
    "format_lattice",
    "list_grids",
    "load_grid",
    "parse_lattice",
]

#: Where the named grid configs live.
GRID_DIR: Path = CONF_DIR / "grid"

_GRID_KEYS = {"task", "lattices", "points", "worms", "n_configs", "seed", "max_worm_length"}
_META_KEYS = {"name", "description"}


class Cell(NamedTuple):
    """One grid cell: a test lattice, a physics point and a worm count (0 for observables)."""

    lattice: Lattice
    params: PhysicsParams
    worms: int


def parse_lattice(value: Any) -> Lattice:
    """``"60x4"`` / ``"8x8x8"`` / ``[60, 4]`` / ``{nt: 60, nx: 4}`` / a :class:`Lattice` -> a
    validated ``Lattice``.

    >>> parse_lattice("100x5"), parse_lattice([8, 8]), parse_lattice("12x8x8")
    (Lattice(nt=100, nx=5), Lattice(nt=8, nx=8), Lattice(shape=(12, 8, 8)))
    """
    return Lattice.parse(value)


def format_lattice(lattice: Lattice | Sequence[int]) -> str:
    """``Lattice(60, 4)`` or ``(60, 4)`` -> ``"60x4"``; ``(8, 8, 8)`` -> ``"8x8x8"``."""
    if isinstance(lattice, Lattice):
        return str(lattice)
    return "x".join(str(int(n)) for n in lattice)


def _points(raw: Mapping[str, Any]) -> list[PhysicsParams]:
    """The grid's points: ``points`` (a list) or the product over the theory's parameter lists."""
    theory = get_theory()
    names = theory.parameter_names
    if raw.get("points") is not None:
        pts_raw = to_plain(raw["points"])
        if not isinstance(pts_raw, Sequence) or isinstance(pts_raw, str) or not pts_raw:
            raise ConfigError(
                f"grid.points must be a non-empty list of {{{', '.join(names)}}}, got {pts_raw!r}"
            )
        points = [theory.params(p, key=f"grid.points[{i}]") for i, p in enumerate(pts_raw)]
    else:
        for key in names:
            if raw.get(key) is None:
                raise ConfigError(f"grid.{key} is required (or give grid.points)")
        axes = [number_list(f"grid.{key}", raw[key]) for key in names]
        points = [
            theory.params(dict(zip(names, values, strict=True)), key="grid point")
            for values in itertools.product(*axes)
        ]
    if len(set(points)) != len(points):
        raise ConfigError("grid.points must be distinct")
    return points


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
        """Validate a grid config node (a mapping or a DictConfig); ``ConfigError`` on any bad value."""
        raw = to_plain(node)
        if not isinstance(raw, Mapping):
            raise ConfigError(f"a grid must be a mapping, got {raw!r}")
        allowed = _GRID_KEYS | _META_KEYS | set(get_theory().parameter_names)
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(f"unknown grid key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        try:
            task = get_task(raw.get("task"))
        except ConfigError as exc:
            raise ConfigError(f"grid.task: {exc}") from None
        lats = to_plain(raw.get("lattices"))
        if not isinstance(lats, Sequence) or isinstance(lats, str) or not lats:
            raise ConfigError(
                f"grid.lattices must be a non-empty list like ['8x8', '16x16'], got {lats!r}"
            )
        lattices = tuple(
            get_theory().lattice(v, key=f"grid.lattices[{i}]") for i, v in enumerate(lats)
        )
        if len(set(lattices)) != len(lattices):
            raise ConfigError(
                f"grid.lattices must not repeat sizes, got {[format_lattice(x) for x in lattices]}"
            )
        points = _points(raw)
        worms_raw = raw.get("worms")
        if worms_raw is None and not task.inserts_worms:
            worms_raw = [0]
        worms = task.check_worms("grid.worms", worms_raw, lattices)
        n_configs = integer("grid.n_configs", raw.get("n_configs"), minimum=task.min_cell_configs)
        seed = integer("grid.seed", raw.get("seed"), minimum=0)
        max_worm_length = integer(
            "grid.max_worm_length", raw.get("max_worm_length"), minimum=1, optional=True
        )
        return cls(
            task=task.name,
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
                raise ConfigError(
                    f"grid cell {format_lattice(lat)} {get_theory().values(p)}: {exc}"
                ) from exc

    def describe(self) -> dict[str, Any]:
        """Plain description (JSON/YAML friendly)."""
        return {
            "name": self.name,
            "task": self.task,
            "lattices": [format_lattice(x) for x in self.lattices],
            "points": [get_theory().values(p) for p in self.points],
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
        raise ConfigError(f"unknown grid {name!r}; valid grids: {', '.join(list_grids(d))}")
    node = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))
    return Grid.from_config(node, name=name)
