"""Shared data for the network tests: the seed's parameter counts (its backup slides, SPEC §6)."""

from __future__ import annotations

import pytest
import torch

# The ONE place the seed's numbers live: "<task>/<preset>" -> parameter count of the Optuna winner.
SEED_PARAMETER_COUNTS: dict[str, int] = {
    "observables/eq": 33202,
    "observables/st": 26370,
    "observables/fl": 47394,
    "detection/eq": 2657,
    "detection/st": 953,
    "detection/fl": 5600,
    "counting/eq_1": 1800,
    "counting/eq_2": 456,
    "counting/eq_3": 308,
    "counting/st_1": 2336,
    "counting/st_2": 132,
    "counting/st_3": 1184,
    "counting/fl_1": 640,
    "counting/fl_2": 640,
    "counting/fl_3": 2704,
}


#: Family eqr presets (ours, not the seed's): name -> (parameter count, the EQ winner it mirrors).
#: The derivations are written in each preset file (conf/presets/<task>/eqr*.yaml).
EQR_PARAMETER_COUNTS: dict[str, tuple[int, str]] = {
    "observables/eqr": (32959, "observables/eq"),
    "detection/eqr": (2633, "detection/eq"),
    "counting/eqr_1": (1800, "counting/eq_1"),
    "counting/eqr_2": (460, "counting/eq_2"),
    "counting/eqr_full": (1830, "counting/eq_1"),
}


#: Task 4 (flux localisation, ours): site-output presets (conf/presets/localisation/*.yaml).
LOCALISATION_PARAMETER_COUNTS: dict[str, int] = {
    "localisation/eq": 881,
    "localisation/st": 5521,
    "localisation/fl": 41300,
}


@pytest.fixture
def seed_parameter_counts() -> dict[str, int]:
    return dict(SEED_PARAMETER_COUNTS)


@pytest.fixture
def eqr_parameter_counts() -> dict[str, tuple[int, str]]:
    return dict(EQR_PARAMETER_COUNTS)


@pytest.fixture
def preset_parameter_counts() -> dict[str, int]:
    """Every preset: the seed's 15 winners, the eqr presets and the localisation presets."""
    return {
        **SEED_PARAMETER_COUNTS,
        **{k: v[0] for k, v in EQR_PARAMETER_COUNTS.items()},
        **LOCALISATION_PARAMETER_COUNTS,
    }


@pytest.fixture(autouse=True)
def _seeded_single_thread() -> None:
    """Reproducible weights and inputs; one thread (the CI has two cores shared by jobs)."""
    torch.manual_seed(1234)
    torch.set_num_threads(1)
