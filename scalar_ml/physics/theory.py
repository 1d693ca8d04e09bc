r"""The theory boundary: what the rest of scalar-ml may know about the lattice theory it samples.

Everything outside :mod:`scalar_ml.physics` (the data layer, the tasks, evaluation, the CLIs) asks
the :class:`Theory` object for the theory's vocabulary instead of spelling it out:

- **parameters**: the couplings, in a fixed order, with their symbols. For the complex φ⁴ field
  (SPEC §2): ``eta`` (η = 2d + m² on a d-dimensional lattice), ``lam`` (λ, quartic) and ``mu`` (μ,
  chemical potential on the temporal links); a point is a validated
  :class:`~scalar_ml.physics.params.PhysicsParams`, and whether it exists can depend on the
  lattice's dimension (the free theory needs η − 2(d−1) − 2 cosh μ > 0);
- **the lattice**: periodic ``Nt × Nx`` in 2D, ``N_0 × … × N_{d-1}`` in d = 3, 4 dimensions, time
  first (:class:`~scalar_ml.physics.params.Lattice`: ``shape``, ``dims``);
- **configuration channels**: ``[k_t, k_x, l_t, l_x]`` in 2D (integer link fields; SPEC §1), so a
  batch is ``(N, 4, Nt, Nx)``; in d dimensions ``[k_0 … k_{d-1}, l_0 … l_{d-1}]``
  (:meth:`Theory.channel_names`), a batch ``(N, 2d, *shape)``;
- **observables** measured per configuration: ``n`` (charge density, :math:`\frac1V\sum_x k_{x,t}`),
  ``phi2`` (:math:`|\phi|^2`) and ``phi4`` (:math:`|\phi|^4`); each has a symbol for figures and an
  ASCII label for plain-text tables;
- **the sampler**: :meth:`Theory.generate` (the dual worm algorithm), its options (the data-changing
  ones are part of the ensemble cache key) and its version tag;
- two roles of parameters that generic figures and CLIs need: :attr:`Theory.scan_parameter` (the one
  a scan varies: μ, whose scan shows the Silver Blaze onset) and :attr:`Theory.map_parameters` (the
  two axes of evaluation heat maps: η and μ).

The cache keys its files by ``theory.values(params)``, stores ``theory.observable_names``; the
evaluation table has one column per parameter; ``python -m scalar_ml.sample`` prints the observables.
A second theory (another model, or this one in more dimensions) is a second :class:`Theory`.

>>> th = get_theory()
>>> th.parameter_names, th.observable_names
(('eta', 'lam', 'mu'), ('n', 'phi2', 'phi4'))
>>> p = th.params({"eta": 4.01, "lam": 1, "mu": 1.5})
>>> p, th.values(p)
(PhysicsParams(eta=4.01, lam=1.0, mu=1.5), {'eta': 4.01, 'lam': 1.0, 'mu': 1.5})
>>> th.label(p), th.slug(p)
('η=4.01, λ=1, μ=1.5', 'eta4.01_lam1_mu1.5')
>>> th.channel_names(3)
('k_t', 'k_x', 'k_y', 'l_t', 'l_x', 'l_y')
>>> th.params({"eta": 6.01, "lam": 0, "mu": 0.5}, key="physics", lattice=Lattice(8, 8, 8))
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: physics: the free theory (lam = 0) does not exist at eta = 6.01, mu = 0.5 in 3 dimensions: it needs eta - 4 - 2 cosh(mu) > 0, got -0.245...
>>> th.params({"eta": 4.01, "mu": 1.0}, key="data.points.a")
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: data.points.a must have exactly the keys eta, lam, mu, got ['eta', 'mu']
>>> th.params({"eta": -1.0, "lam": 1.0, "mu": 1.0}, key="physics")
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: physics: eta must be > 0, got eta = -1.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalar_ml.config import ConfigError, flag, integer, number, to_plain
from scalar_ml.physics.params import DIMENSIONS, Lattice, PhysicsParams, validate_point

__all__ = ["THEORIES", "Quantity", "Theory", "get_theory"]


@dataclass(frozen=True)
class Quantity:
    """A named quantity of a theory: a coupling or a per-configuration observable.

    ``name`` is the identifier used in code, configs, files and tables; ``symbol`` is for figures;
    ``ascii`` for plain-text tables.
    """

    name: str
    symbol: str
    ascii: str
    description: str = ""


@dataclass(frozen=True)
class Theory:
    """A lattice theory as the rest of the package sees it (see the module docstring)."""

    name: str
    parameters: tuple[Quantity, ...]
    observables: tuple[Quantity, ...]
    #: Channels of a 2D configuration (:meth:`channel_names` gives those in any dimension).
    channels: tuple[str, ...]
    scan_parameter: str
    map_parameters: tuple[str, str]
    #: Sampler options that change the data (part of the cache key), with their defaults.
    data_options: tuple[tuple[str, Any], ...]
    #: Sampler options that do not change the data (passed on, not part of the key).
    run_options: tuple[tuple[str, Any], ...]
    #: Names of the lattice directions, time first (channel names are ``k_<name>``, ``l_<name>``).
    direction_names: tuple[str, ...] = ("t", "x", "y", "z")

    # -- vocabulary -------------------------------------------------------------------------------
    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The couplings' names in their fixed order."""
        return tuple(q.name for q in self.parameters)

    @property
    def observable_names(self) -> tuple[str, ...]:
        """The per-configuration observables' names in their fixed order."""
        return tuple(q.name for q in self.observables)

    @property
    def in_channels(self) -> int:
        """Number of channels of a 2D configuration (:meth:`n_channels` in any dimension)."""
        return len(self.channels)

    def channel_names(self, dims: int = 2) -> tuple[str, ...]:
        """The configuration channels on a ``dims``-dimensional lattice: ``k_ν`` then ``l_ν``."""
        if dims not in DIMENSIONS:
            raise ValueError(f"dims must be one of {DIMENSIONS}, got {dims!r}")
        if dims == 2:
            return self.channels
        names = self.direction_names[:dims]
        return (*(f"k_{d}" for d in names), *(f"l_{d}" for d in names))

    def n_channels(self, dims: int = 2) -> int:
        """Number of configuration channels on a ``dims``-dimensional lattice (the network input's
        channel axis): ``2 dims``."""
        return len(self.channel_names(dims))

    def parameter(self, name: str) -> Quantity:
        """The coupling ``name`` (``KeyError`` naming the valid ones otherwise)."""
        for q in self.parameters:
            if q.name == name:
                return q
        raise KeyError(f"{self.name} has no parameter {name!r}; parameters: {self.parameter_names}")

    def observable(self, name: str) -> Quantity:
        """The observable ``name`` (``KeyError`` naming the valid ones otherwise)."""
        for q in self.observables:
            if q.name == name:
                return q
        raise KeyError(
            f"{self.name} has no observable {name!r}; observables: {self.observable_names}"
        )

    # -- parameter points -------------------------------------------------------------------------
    def params(
        self, values: Any, *, key: str = "physics", lattice: Lattice | None = None
    ) -> PhysicsParams:
        """A validated point from a mapping of exactly the theory's parameters (or a point itself).

        With ``lattice``, the point must exist on it (in its dimension); without, in 2D (a point
        that exists in d > 2 dimensions exists in 2D too). Raises
        :class:`~scalar_ml.config.ConfigError` naming ``key`` for missing, extra or bad values.
        """
        if isinstance(values, PhysicsParams):
            params = values
        else:
            raw = to_plain(values)
            if not isinstance(raw, Mapping):
                raise ConfigError(
                    f"{key} must be a mapping {{{', '.join(self.parameter_names)}}}, got {raw!r}"
                )
            if set(raw) != set(self.parameter_names):
                raise ConfigError(
                    f"{key} must have exactly the keys {', '.join(self.parameter_names)}, "
                    f"got {sorted(raw)}"
                )
            params = PhysicsParams(
                **{n: number(f"{key}.{n}", raw[n]) for n in self.parameter_names}
            )
        try:
            params.validate(2 if lattice is None else lattice.dims)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
        return params

    def values(self, params: PhysicsParams) -> dict[str, float]:
        """The point as ``{name: float}`` in the theory's order (JSON, keys, table columns)."""
        return {n: float(getattr(params, n)) for n in self.parameter_names}

    def replace(self, params: PhysicsParams, **changes: float) -> PhysicsParams:
        """The point with some parameters changed (e.g. ``replace(p, **{scan: value})``)."""
        unknown = sorted(set(changes) - set(self.parameter_names))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; parameters: {self.parameter_names}")
        return dataclasses.replace(params, **{k: float(v) for k, v in changes.items()})

    def label(self, params: PhysicsParams, names: tuple[str, ...] | None = None) -> str:
        """``'η=4.01, λ=1, μ=1.5'`` (only ``names`` when given), for figures and logs."""
        values = self.values(params)
        return ", ".join(
            f"{self.parameter(n).symbol}={values[n]:g}" for n in (names or self.parameter_names)
        )

    def slug(self, params: PhysicsParams) -> str:
        """``'eta4.01_lam1_mu1.5'``: the readable part of file names (the key carries full precision)."""
        return "_".join(f"{n}{v:g}" for n, v in self.values(params).items())

    def validate(
        self, params: object, lattice: object, *, error: type[Exception] = ValueError
    ) -> None:
        """Check a point and a lattice before any work (types, then values)."""
        validate_point(params, lattice, error=error)

    # -- lattices ---------------------------------------------------------------------------------
    def lattice(self, value: Any, *, key: str = "lattice") -> Lattice:
        """A validated lattice from ``"60x4"``, ``"8x8x8"``, ``[60, 4]``, ``{nt: 60, nx: 4}``,
        ``{shape: [8, 8, 8]}`` or a ``Lattice``."""
        try:
            return Lattice.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from exc

    # -- point symmetries --------------------------------------------------------------------------
    def symmetry_group(self, points: Iterable[PhysicsParams], lattice: Lattice) -> Any:
        """The exact point symmetries common to every point of ``points`` on ``lattice``.

        A :class:`~scalar_ml.physics.symmetry.SymmetryGroup` (translations aside): ``<P, TC>`` as
        soon as one point has ``mu != 0``, larger at ``mu = 0`` (see
        :mod:`scalar_ml.physics.symmetry`).

        >>> th = get_theory()
        >>> str(th.symmetry_group([th.params({"eta": 4.01, "lam": 1, "mu": 1.0})], Lattice(60, 4)))
        '<P, TC>'
        """
        from scalar_ml.physics.symmetry import common_symmetry_group

        return common_symmetry_group([p.mu for p in points], lattice)

    def symmetry_refusal(
        self, element: Any, points: Iterable[PhysicsParams], lattice: Lattice
    ) -> str | None:
        """Why ``element`` is not an exact symmetry at some point of ``points``; ``None`` if it is at all.

        >>> from scalar_ml.physics.symmetry import element
        >>> th = get_theory()
        >>> th.symmetry_refusal(element("T"), [th.params({"eta": 4.01, "lam": 1, "mu": 1.0})],
        ...                     Lattice(60, 4))
        'at eta=4.01, lam=1, mu=1: T maps the ensemble at mu = 1 onto the one at mu = -1 (the charge density n changes sign)'
        """
        for p in points:
            reason = element.why_not_symmetry(p.mu, lattice)
            if reason is not None:
                point = ", ".join(f"{n}={v:g}" for n, v in self.values(p).items())
                return f"at {point}: {reason}"
        return None

    # -- configurations and observables -----------------------------------------------------------
    def measure(
        self, configs: np.ndarray, params: PhysicsParams, *, dims: int = 2
    ) -> dict[str, np.ndarray]:
        """Every observable of each configuration ``(N, C, *shape)`` on a ``dims``-dimensional
        lattice: ``{name: (N,) float64}``."""
        from scalar_ml.physics.observables import measure

        return measure(configs, params, dims=dims)

    def series(self, ensemble: Any, name: str) -> np.ndarray:
        """The stored per-configuration values ``(N,)`` of observable ``name`` of an ensemble."""
        self.observable(name)
        return np.asarray(getattr(ensemble, name))

    def check_closed(self, configs: np.ndarray, *, dims: int = 2) -> None:
        """``ValueError`` unless every configuration ``(N, 2d, *shape)`` (``d = dims``) is physical:
        ``div k = 0`` and ``l >= 0``."""
        from scalar_ml.physics.observables import flux_divergence

        c = np.asarray(configs)
        axes = tuple(range(-dims, 0))
        bad = np.flatnonzero(np.any(flux_divergence(c, dims=dims) != 0, axis=axes).reshape(-1))
        if bad.size:
            raise ValueError(
                f"{bad.size} configuration(s) violate div k = 0 (first: index {bad[0]})"
            )
        if np.any(c[(..., slice(dims, None)) + (slice(None),) * dims] < 0):
            raise ValueError("l must be >= 0 on every link")

    # -- the sampler ------------------------------------------------------------------------------
    @property
    def sampler_version(self) -> str:
        """Version tag of the sampling algorithm (part of every cache key)."""
        from scalar_ml.physics.ensemble import SAMPLER_VERSION

        return f"worm-{SAMPLER_VERSION}"

    def sampler_options(
        self,
        options: Mapping[str, Any] | None,
        *,
        prefix: str = "",
        error: type[ValueError] = ConfigError,
    ) -> dict[str, Any]:
        """Validated sampler options with every default filled in (data-changing and run options).

        ``n_chains >= 1``, ``n_therm >= 0`` or null, ``sweeps_between >= 1`` or null, ``progress``
        a flag; unknown options are refused. Messages name ``<prefix><option>`` (e.g. ``sampler.``).

        >>> get_theory().sampler_options({"n_chains": 2})
        {'n_chains': 2, 'n_therm': None, 'sweeps_between': None, 'progress': False}
        >>> get_theory().sampler_options({"n_chains": 0}, prefix="sampler.")
        Traceback (most recent call last):
        ...
        scalar_ml.config.ConfigError: sampler.n_chains must be an integer >= 1, got 0
        """
        raw = dict(to_plain(options) or {})
        defaults = dict(self.data_options) | dict(self.run_options)
        unknown = sorted(set(raw) - set(defaults))
        if unknown:
            raise error(
                f"unknown {prefix}option(s) {unknown}; allowed: {', '.join(sorted(defaults))}"
            )
        opts = {**defaults, **raw}
        opts["n_chains"] = integer(f"{prefix}n_chains", opts["n_chains"], minimum=1, error=error)
        opts["n_therm"] = integer(
            f"{prefix}n_therm", opts["n_therm"], minimum=0, optional=True, error=error
        )
        opts["sweeps_between"] = integer(
            f"{prefix}sweeps_between", opts["sweeps_between"], minimum=1, optional=True, error=error
        )
        flag(f"{prefix}progress", opts["progress"], error=error)
        return opts

    def generate(
        self, params: PhysicsParams, lattice: Lattice, n_configs: int, seed: int, **options: Any
    ) -> Any:
        """Sample an :class:`~scalar_ml.physics.ensemble.Ensemble` (the dual worm algorithm)."""
        from scalar_ml.physics.ensemble import generate_ensemble

        return generate_ensemble(params, lattice, n_configs, seed, **options)

    def ensemble(
        self, configs: np.ndarray, observables: Mapping[str, np.ndarray], meta: dict[str, Any]
    ) -> Any:
        """An :class:`~scalar_ml.physics.ensemble.Ensemble` from arrays (e.g. read from a cache)."""
        from scalar_ml.physics.ensemble import Ensemble

        return Ensemble(
            configs=configs, meta=meta, **{n: observables[n] for n in self.observable_names}
        )


#: The complex φ⁴ field in 1+1D (and d = 3, 4 dimensions) at chemical potential μ, in its dual
#: flux representation (SPEC §2-3).
COMPLEX_PHI4 = Theory(
    name="complex_phi4",
    parameters=(
        Quantity("eta", "η", "eta", "hopping parameter η = 2d + m² (d: lattice dimension)"),
        Quantity("lam", "λ", "lam", "quartic coupling λ >= 0"),
        Quantity("mu", "μ", "mu", "chemical potential μ (temporal links)"),
    ),
    observables=(
        Quantity("n", "n", "<n>", "charge density (1/V) Σ_x k_{x,t}"),
        Quantity("phi2", "|φ|²", "<|phi|^2>", "(1/V) Σ_x W(f_x+2)/W(f_x)"),
        Quantity("phi4", "|φ|⁴", "<|phi|^4>", "(1/V) Σ_x W(f_x+4)/W(f_x)"),
    ),
    channels=("k_t", "k_x", "l_t", "l_x"),
    scan_parameter="mu",
    map_parameters=("eta", "mu"),
    data_options=(("n_chains", 8), ("n_therm", None), ("sweeps_between", None)),
    run_options=(("progress", False),),
)

#: Every theory by name.
THEORIES: dict[str, Theory] = {COMPLEX_PHI4.name: COMPLEX_PHI4}


def get_theory(name: str | None = None) -> Theory:
    """The theory ``name`` (default: the complex φ⁴ field, the only one today)."""
    if name is None:
        return COMPLEX_PHI4
    try:
        return THEORIES[name]
    except KeyError:
        raise ConfigError(f"unknown theory {name!r}; theories: {', '.join(THEORIES)}") from None
