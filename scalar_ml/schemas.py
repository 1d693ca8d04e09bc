"""Structured-config schemas: Hydra checks keys and types of the shared config groups at composition.

Registered in Hydra's ``ConfigStore`` when :mod:`scalar_ml` is imported, and named first in the
defaults list of each group file (``defaults: [schema, _self_]``) and of ``conf/sample.yaml``:

- ``physics/schema``: one float per parameter of the theory (:mod:`scalar_ml.physics.theory`:
  ``eta``, ``lam``, ``mu``);
- ``lattice/schema``: ``nt``, ``nx`` (integers, a 2D lattice) or ``shape`` (a list of 2 to 4
  integers, time first: ``conf/lattice/8x8x8.yaml``); the unused form stays null;
- ``sampler/schema``: ``n_chains`` (int), ``n_therm``, ``sweeps_between`` (int or null),
  ``progress`` (bool);
- ``sample_schema``: the whole ``python -m scalar_ml.sample`` config (the groups above, ``scan``
  with a list of values of the theory's scan parameter, ``seed``, ``n_configs``, ``format``, ``out``,
  ``cache``).

So ``lattice.nt=abc`` or ``physics.etaa=1`` are refused by Hydra before any run directory exists,
with a message naming the full key. Hydra lets ``+key=value`` overrides add keys even to structured
configs; :func:`check_keys` merges a composed config into its schema afterwards, so ``+foo=1`` is
refused too (by OmegaConf, the check is not re-implemented here). *Values* (ranges, existence
of the theory at a point) are checked by the validated value objects right after composition
(:meth:`~scalar_ml.physics.theory.Theory.params`, :meth:`~scalar_ml.physics.params.Lattice.parse`,
:meth:`~scalar_ml.physics.theory.Theory.sampler_options`), before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from scalar_ml.physics.theory import get_theory

__all__ = ["LatticeSchema", "SamplerSchema", "check_keys", "register_schemas"]


@dataclass
class LatticeSchema:
    """A periodic ``nt × nx`` lattice, or ``shape = [N_0, …, N_{d-1}]`` (d = 2, 3, 4), time first.

    Exactly one form is given (checked by :meth:`scalar_ml.physics.params.Lattice.parse`)."""

    nt: int | None = None
    nx: int | None = None
    shape: list[int] | None = None


@dataclass
class SamplerSchema:
    """Options of the sampler (see :func:`scalar_ml.physics.generate_ensemble`)."""

    n_chains: int = 8
    n_therm: int | None = None
    sweeps_between: int | None = None
    progress: bool = True


def _physics_schema() -> type:
    """One float field per parameter of the theory (values come from the group's YAML files)."""
    theory = get_theory()
    return dataclasses.make_dataclass(
        "PhysicsSchema", [(name, float, field(default=MISSING)) for name in theory.parameter_names]
    )


def _scan_schema() -> type:
    """``scan.<scan parameter>``: an optional list of values (one ensemble each)."""
    return dataclasses.make_dataclass(
        "ScanSchema", [(get_theory().scan_parameter, Any, field(default=None))]
    )


def _sample_schema(physics: type, scan: type) -> type:
    return dataclasses.make_dataclass(
        "SampleSchema",
        [
            ("paths", Any, field(default=None)),
            ("task_name", str, field(default="sample")),
            ("physics", physics, field(default_factory=physics)),
            ("lattice", LatticeSchema, field(default_factory=LatticeSchema)),
            ("sampler", SamplerSchema, field(default_factory=SamplerSchema)),
            ("scan", scan, field(default_factory=scan)),
            ("seed", Any, field(default=0)),
            ("n_configs", Any, field(default=1000)),
            ("format", str, field(default="table")),
            ("out", Any, field(default=None)),
            ("cache", Any, field(default=True)),
        ],
    )


_registered = False
_SCHEMAS: dict[str, type] = {}


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    physics = _physics_schema()
    cs.store(group="physics", name="schema", node=physics)
    cs.store(group="lattice", name="schema", node=LatticeSchema)
    cs.store(group="sampler", name="schema", node=SamplerSchema)
    _SCHEMAS["sample"] = _sample_schema(physics, _scan_schema())
    cs.store(name="sample_schema", node=_SCHEMAS["sample"])
    _registered = True


def check_keys(cfg: Any, schema: str) -> None:
    """Refuse keys of ``cfg`` that the schema ``schema`` (e.g. ``"sample"``) does not have.

    Raises :class:`~scalar_ml.config.ConfigError` naming the full key.

    >>> from omegaconf import OmegaConf
    >>> register_schemas()
    >>> check_keys(OmegaConf.create({"seed": 1, "foo": 2}), "sample")
    Traceback (most recent call last):
    ...
    scalar_ml.config.ConfigError: unknown config key 'foo' (see conf/sample.yaml and scalar_ml/schemas.py for the valid keys)
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import ConfigKeyError, ValidationError

    from scalar_ml.config import ConfigError

    register_schemas()
    # A plain copy: a composed config may already be typed by the schema (with keys Hydra force-added).
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    plain.pop("hydra", None)
    node = OmegaConf.create(plain)
    try:
        OmegaConf.merge(OmegaConf.structured(_SCHEMAS[schema]), node)
    except (ConfigKeyError, ValidationError) as exc:
        key = getattr(exc, "full_key", None) or str(exc)
        raise ConfigError(
            f"unknown config key {key!r} (see conf/{schema}.yaml and scalar_ml/schemas.py for "
            "the valid keys)"
        ) from None
