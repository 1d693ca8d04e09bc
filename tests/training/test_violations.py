"""Open-worm insertion (SPEC §5): exact counts, two violations per worm, determinism, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from scalar_ml.data.violations import (
    check_worms_fit,
    has_violation,
    insert_open_worms,
    max_worms,
    violation_count,
)


def independent_div(configs: np.ndarray) -> np.ndarray:
    """div_x k = Σ_ν (k[x, ν] − k[x − ν̂, ν]) by explicit loops over sites (a second implementation)."""
    n, _, nt, nx = configs.shape
    div = np.zeros((n, nt, nx), dtype=np.int64)
    for t in range(nt):
        for x in range(nx):
            div[:, t, x] = (
                configs[:, 0, t, x]
                - configs[:, 0, (t - 1) % nt, x]
                + configs[:, 1, t, x]
                - configs[:, 1, t, (x - 1) % nx]
            )
    return div


def closed_configs(n: int, nt: int, nx: int, seed: int = 0) -> np.ndarray:
    """Random closed configurations: plaquette loops, temporal and spatial windings, random l >= 0."""
    rng = np.random.default_rng(seed)
    p = rng.integers(-2, 3, size=(n, nt, nx))  # plaquette circulations
    cfg = np.zeros((n, 4, nt, nx), dtype=np.int32)
    # A unit plaquette at (t, x): +k_t(t, x) +k_x(t+1, x) −k_t(t, x+1) −k_x(t, x).
    cfg[:, 0] += p - np.roll(p, 1, axis=-1)
    cfg[:, 1] += np.roll(p, 1, axis=-2) - p
    cfg[:, 0] += rng.integers(-1, 2, size=(n, 1, nx))  # temporal windings per column
    cfg[:, 1] += rng.integers(-1, 2, size=(n, nt, 1))  # spatial windings per row
    cfg[:, 2:] = rng.integers(0, 3, size=(n, 2, nt, nx))
    assert not np.any(independent_div(cfg)), "test helper must build closed configurations"
    return cfg


@pytest.mark.parametrize(("nt", "nx"), [(8, 8), (6, 5), (60, 4)])
def test_counts_are_exact_and_each_worm_adds_two_unit_violations(nt: int, nx: int) -> None:
    configs = closed_configs(200, nt, nx, seed=nt * nx)
    counts = np.random.default_rng(1).integers(0, 11, size=len(configs))
    out = insert_open_worms(configs, counts, np.random.default_rng(2))
    div = independent_div(out)
    np.testing.assert_array_equal(violation_count(out), counts)
    np.testing.assert_array_equal(np.abs(div).sum(axis=(1, 2)), 2 * counts)  # exactly 2M sites ...
    assert np.abs(div).max() <= 1  # ... each with |div k| = 1 (no end point shared)
    np.testing.assert_array_equal((div != 0).sum(axis=(1, 2)), 2 * counts)
    np.testing.assert_array_equal(has_violation(out), counts > 0)
    np.testing.assert_array_equal(out[:, 2:], configs[:, 2:])  # l is never touched
    assert out.dtype == configs.dtype


def test_input_is_not_modified_and_result_is_deterministic() -> None:
    configs = closed_configs(50, 8, 8)
    before = configs.copy()
    a = insert_open_worms(configs, 5, np.random.default_rng(7))
    b = insert_open_worms(configs, 5, np.random.default_rng(7))
    c = insert_open_worms(configs, 5, np.random.default_rng(8))
    np.testing.assert_array_equal(configs, before)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_read_only_cache_arrays_are_accepted() -> None:
    configs = closed_configs(4, 8, 8)
    configs.flags.writeable = False
    out = insert_open_worms(configs, 2, np.random.default_rng(0))
    assert violation_count(out).tolist() == [2, 2, 2, 2]


def test_full_lattice_fits_exactly_v_over_2_worms() -> None:
    configs = closed_configs(20, 4, 4)
    out = insert_open_worms(configs, max_worms(4, 4), np.random.default_rng(3))
    assert np.all(np.abs(independent_div(out)) == 1)  # every site is an end point
    np.testing.assert_array_equal(violation_count(out), 8)


def test_length_one_worms_are_single_links() -> None:
    configs = np.zeros((300, 4, 16, 16), dtype=np.int32)
    out = insert_open_worms(configs, 1, np.random.default_rng(4), min_length=1, max_length=1)
    # One step from the start to a free neighbour: one link changed by ±1.
    np.testing.assert_array_equal(np.abs(out[:, :2]).sum(axis=(1, 2, 3)), 1)
    div = independent_div(out)
    for d in div:
        (t1, x1), (t2, x2) = np.argwhere(d != 0)
        dist_t, dist_x = min((t1 - t2) % 16, (t2 - t1) % 16), min((x1 - x2) % 16, (x2 - x1) % 16)
        assert dist_t + dist_x == 1


def test_worms_carry_flux_along_a_path_of_at_least_min_length_links() -> None:
    configs = np.zeros((200, 4, 12, 12), dtype=np.int32)
    out = insert_open_worms(configs, 1, np.random.default_rng(5), min_length=6, max_length=6)
    changed = np.abs(out[:, :2]).sum(axis=(1, 2, 3))
    # A walk of >= 6 steps changes at most its number of links; retracing can cancel, but the
    # two end points are always joined by flux: at least their lattice distance in links.
    div = independent_div(out)
    for d, total in zip(div, changed, strict=True):
        (t1, x1), (t2, x2) = np.argwhere(d != 0)
        dist = min((t1 - t2) % 12, (t2 - t1) % 12) + min((x1 - x2) % 12, (x2 - x1) % 12)
        assert 1 <= dist <= total
    assert changed.max() >= 4  # not all worms collapse to one link


def test_start_sign_is_random() -> None:
    configs = np.zeros((400, 4, 8, 8), dtype=np.int32)
    out = insert_open_worms(configs, 1, np.random.default_rng(6))
    k_sum = out[:, :2].sum(axis=(1, 2, 3))
    assert (k_sum > 0).any() and (k_sum < 0).any()


def test_too_many_worms_is_a_clear_error_before_any_work() -> None:
    configs = closed_configs(3, 8, 8)
    with pytest.raises(
        ValueError,
        match=r"33 open worms need 66 distinct end points but a 8x8 lattice has only 64 sites \(at most 32",
    ):
        insert_open_worms(configs, 33, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at most 32 worms"):
        check_worms_fit([0, 5, 33], 8, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_worms": -1}, "integers >= 0"),
        ({"n_worms": 1.5}, "integers >= 0"),
        ({"n_worms": [1, 2]}, "shape"),
        ({"n_worms": 1, "min_length": 0}, "min_length"),
        ({"n_worms": 1, "min_length": 3, "max_length": 2}, "max_length"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    configs = closed_configs(3, 8, 8)
    n_worms = kwargs.pop("n_worms")
    with pytest.raises(ValueError, match=message):
        insert_open_worms(configs, n_worms, np.random.default_rng(0), **kwargs)


def test_open_input_and_wrong_shapes_are_refused() -> None:
    configs = closed_configs(3, 8, 8)
    configs[1, 0, 2, 2] += 1
    with pytest.raises(ValueError, match=r"not closed .* index 1"):
        insert_open_worms(configs, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"shape \(N, 4, Nt, Nx\)"):
        insert_open_worms(np.zeros((4, 8, 8), dtype=np.int32), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="integer"):
        insert_open_worms(np.zeros((1, 4, 8, 8)), 1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        insert_open_worms(closed_configs(1, 8, 8), 1, 0)  # type: ignore[arg-type]
