"""The physics tests' own machinery: check_mc's three verdicts, and --inject-bias end to end.

``check_mc`` (``physics_tolerances``) must refuse a check without power, a disagreement, and a
check whose negative control passes (data that ignore the shift, as a broken plumbing would).
The injected bias must make a real physics test fail, naming the deviation in sigma.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from physics_tolerances import MAX_REL_SIGMA, N_SIGMA, check_mc

from scalar_ml.physics import autocorrelation

REPO = Path(__file__).resolve().parents[2]


def _normal_data(rng: np.random.Generator, mean: float, sd: float, n: int):
    """Four independent chains of N(mean, sd) samples as shiftable data."""
    chains = [rng.normal(mean, sd, n // 4) for _ in range(4)]
    return lambda offset: autocorrelation([c + offset for c in chains])


def test_a_powerful_agreeing_check_passes(rng: np.random.Generator) -> None:
    # sigma = 0.1/sqrt(40000) = 5e-4 = 0.05 % of 1.0: well inside MAX_REL_SIGMA = 0.125 %
    check_mc(_normal_data(rng, 1.0, 0.1, 40_000), 1.0, "good")


def test_too_few_samples_fail_the_power_assertion(rng: np.random.Generator) -> None:
    with pytest.raises(AssertionError, match="exceeds the stated maximum"):
        check_mc(_normal_data(rng, 1.0, 0.1, 1_000), 1.0, "weak")  # sigma 0.32 %


def test_a_one_percent_bias_fails_by_many_sigma(rng: np.random.Generator) -> None:
    data = _normal_data(rng, 1.01, 0.1, 40_000)
    with pytest.raises(AssertionError, match=r"\+\d+\.\d\d sigma") as info:
        check_mc(data, 1.0, "biased")
    dev = float(re.search(r"([+-]\d+\.\d\d) sigma", str(info.value)).group(1))
    assert dev > 20 - N_SIGMA  # bias 0.01 / sigma 5e-4 = 20 sigma expected


def test_data_that_ignore_the_shift_fail_the_negative_control(rng: np.random.Generator) -> None:
    real = _normal_data(rng, 1.0, 0.1, 40_000)
    with pytest.raises(AssertionError, match="negative control failed"):
        # a check whose tolerance was inflated elsewhere: the shifted data "pass" as well
        check_mc(lambda offset: real(0.0), 1.0, "plumbing")


def test_absolute_bound_where_the_reference_is_zero(rng: np.random.Generator) -> None:
    check_mc(_normal_data(rng, 0.0, 0.1, 40_000), 0.0, "zero", max_sigma=1e-3)
    with pytest.raises(AssertionError, match="exceeds the stated maximum"):
        check_mc(_normal_data(rng, 0.0, 0.1, 40_000), 0.0, "zero", max_sigma=1e-4)
    assert MAX_REL_SIGMA == 0.01 / 8


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize(
    ("bias", "fails"),
    [("phi2:+0.01@4.01,1.5", False), ("n:-0.1@7.5,1.5", True)],
)
def test_injected_bias_fails_the_free_field_check(bias: str, fails: bool) -> None:
    """A real test (free field 8x8, eta = 7.5, mu = 1.5) under --inject-bias, in a subprocess."""
    node = "tests/physics/test_sampler_exact.py::test_free_field_exact[8x8-eta7.5-lam0.0-mu1.5]"
    options = ["-q", "-p", "no:cacheprovider", "--tb=line", f"--inject-bias={bias}"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", node, *options],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    if not fails:  # the bias sits at another point: this test is unaffected
        assert proc.returncode == 0, out[-3000:]
        return
    assert proc.returncode == 1, out[-3000:]
    dev = re.search(r"([+-]\d+\.\d\d) sigma \(\|dev\| > 4\)", out)
    assert dev is not None, out[-3000:]
    assert abs(float(dev.group(1))) > N_SIGMA
