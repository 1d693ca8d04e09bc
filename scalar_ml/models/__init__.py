"""EQ / ST / FL (and EQR) networks on ``(B, 4, Nt, Nx)`` lattice configurations, built from layer specs.

A network returns one vector per configuration, ``(B, C)`` (``output: configuration``, the default),
or a field on the input lattice, ``(B, C, Nt, Nx)`` (``output: site``).

- :mod:`~scalar_ml.models.spec`: the YAML/JSON-friendly layer-spec format and its validation;
- :mod:`~scalar_ml.models.layers`: periodic convolution (size-keeping for any kernel, even ones
  included), periodic local pooling, global avg/max/sum pooling, nearest upsampling, activations;
- :mod:`~scalar_ml.models.families`: the eq / st / fl rules, for either output;
- :mod:`~scalar_ml.models.head`: :class:`Head`, what the output looks like (for the search space);
- :mod:`~scalar_ml.models.group`: family eqr, equivariant under translations and a point group
  (reflections, t↔x swap, charge conjugation): lifting and group convolutions, group pooling;
- :mod:`~scalar_ml.models.builder`: :func:`build_model` -> :class:`LatticeNet`;
- :mod:`~scalar_ml.models.presets`: the seed's 15 Optuna winners in ``conf/presets/``;
- :mod:`~scalar_ml.models.equivariance`: :func:`translation_error` and :func:`symmetry_error`,
  the symmetry contracts.

``python -m scalar_ml.models`` lists the presets (``--json`` for machines).

>>> model = build_preset("counting/eq_1")
>>> model.family, model.out_features, count_parameters(model)
('eq', 1, 1800)
"""

from scalar_ml.models.builder import (
    FloorPoolingWarning,
    LatticeNet,
    LatticeTrace,
    build_model,
    count_parameters,
    trace_lattice,
)
from scalar_ml.models.equivariance import (
    lattice_shifts,
    symmetry_error,
    symmetry_errors,
    translation_error,
    translation_errors,
)
from scalar_ml.models.families import check_family
from scalar_ml.models.head import Head
from scalar_ml.models.presets import (
    build_preset,
    format_preset_table,
    list_presets,
    preset_path,
    preset_spec,
    preset_table,
)
from scalar_ml.models.spec import FAMILIES, OUTPUTS, SpecError

__all__ = [
    "FAMILIES",
    "OUTPUTS",
    "FloorPoolingWarning",
    "Head",
    "LatticeNet",
    "LatticeTrace",
    "SpecError",
    "build_model",
    "build_preset",
    "check_family",
    "count_parameters",
    "format_preset_table",
    "lattice_shifts",
    "list_presets",
    "preset_path",
    "preset_spec",
    "preset_table",
    "symmetry_error",
    "symmetry_errors",
    "trace_lattice",
    "translation_error",
    "translation_errors",
]
