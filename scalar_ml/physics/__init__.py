"""Dual (flux) representation of the complex phi^4 field in 1+1D at chemical potential mu.

Public API (no torch import anywhere in this package):

- :class:`PhysicsParams`, :class:`Lattice`: validated couplings and lattice (``params``).
- :class:`WeightTable`, :func:`log_weight`: :math:`\\log W(f)` tables, growing on demand (``weights``).
- :func:`flux_divergence`, :func:`site_f`, :func:`charge_density`, :func:`measure`: per-site and
  per-configuration quantities of ``(..., 4, Nt, Nx)`` configurations; :func:`log_dual_weight`:
  the logarithm of their dual weight (``observables``).
- :class:`LatticeSymmetry`, :func:`element`, :class:`SymmetryGroup`, :func:`generate_group`,
  :func:`symmetry_group`: reflections, the t↔x swap and charge conjugation acting on
  configurations, and the group of exact symmetries at given ``(mu, lattice)`` (``symmetry``).
- :class:`WormChains`: the numba worm / l-update Markov chains (``worm``).
- :func:`free_field_observables`: exact :math:`\\lambda = 0` values (``free_field``).
- :func:`autocorrelation`, :func:`tau_int`: Γ-method errors and :math:`\\tau_{\\rm int}` (``autocorr``).
- :func:`generate_ensemble`, :class:`Ensemble`: decorrelated ensembles from parallel chains (``ensemble``).
- :func:`sample_phi_reference`, :class:`PhiReferenceRun`: independent reference Monte Carlo in the
  field representation with phase reweighting, for validating the dual sampler on small lattices
  (``phi_reference``).
"""

from scalar_ml.physics.autocorr import AutocorrResult, autocorrelation, tau_int
from scalar_ml.physics.ensemble import Ensemble, generate_ensemble
from scalar_ml.physics.free_field import free_field_observables
from scalar_ml.physics.observables import (
    charge_density,
    flux_divergence,
    log_dual_weight,
    measure,
    site_f,
    site_phi_moments,
)
from scalar_ml.physics.params import Lattice, PhysicsParams
from scalar_ml.physics.phi_reference import PhiReferenceRun, sample_phi_reference
from scalar_ml.physics.symmetry import (
    FIXED_MU_GROUP,
    LatticeSymmetry,
    SymmetryGroup,
    element,
    generate_group,
    symmetry_group,
)
from scalar_ml.physics.weights import WeightTable, log_weight
from scalar_ml.physics.worm import WormChains

__all__ = [
    "FIXED_MU_GROUP",
    "AutocorrResult",
    "Ensemble",
    "Lattice",
    "LatticeSymmetry",
    "PhiReferenceRun",
    "PhysicsParams",
    "SymmetryGroup",
    "WeightTable",
    "WormChains",
    "autocorrelation",
    "charge_density",
    "element",
    "flux_divergence",
    "free_field_observables",
    "generate_ensemble",
    "generate_group",
    "log_dual_weight",
    "log_weight",
    "measure",
    "sample_phi_reference",
    "site_f",
    "site_phi_moments",
    "symmetry_group",
    "tau_int",
]
