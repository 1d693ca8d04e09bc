"""Shared pytest setup: caches go to temporary directories, threads stay at the CI's two cores.

Also two switches for demonstrating and enforcing the suite's strength (README, "Development"):

``--inject-bias=OBS:REL[@ETA,MU]`` (test-only, off by default)
    Multiplies the observable ``OBS`` (``phi2`` or ``n``) of every ensemble that
    ``scalar_ml.physics.generate_ensemble`` returns *in the test process* by ``1 + REL``, at every
    point or only at ``(eta, mu)``, e.g. ``--inject-bias=phi2:+0.01`` or
    ``--inject-bias=phi2:+0.01@4.01,1.5``. It models a sampler that is biased by ``REL``: the
    physics tests must then fail, each naming the deviation in σ. (Subprocesses, e.g. the CLI
    tests, sample unbiased.) In CI: ``PYTEST_ADDOPTS=--inject-bias=phi2:+0.01 bash .ci/run``.

``REQUIRE_SERVICES=1`` (environment; ``.ci/run`` sets it)
    Tests marked ``services`` (a real PostgreSQL server, a SLURM cluster) *fail* instead of
    skipping when their service cannot be started; without it they skip with the reason.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh, empty ensemble cache directory for one test."""
    d = tmp_path / "data"
    d.mkdir()
    return d


# --doctest-modules would also import every conftest.py and helper module under tests/ as a plain
# module named after its file; several share a basename ("conftest"), which makes the collection
# depend on the order of the paths given. Doctests live in scalar_ml/, so skip these here.
collect_ignore_glob = ["*/conftest.py", "*_helpers.py"]


# ---------------------------------------------------------------------------- injected bias
_BIAS_SYNTAX = re.compile(
    r"^(?P<obs>phi2|n):(?P<rel>[+-]?[0-9.]+(?:e[+-]?[0-9]+)?)"
    r"(?:@(?P<eta>[0-9.]+),(?P<mu>[0-9.]+))?$"
)


@dataclasses.dataclass(frozen=True)
class InjectedBias:
    """``--inject-bias``: scale ``observable`` by ``1 + relative`` (at ``point`` = (eta, mu) only)."""

    observable: str
    relative: float
    point: tuple[float, float] | None

    @classmethod
    def parse(cls, text: str) -> InjectedBias:
        match = _BIAS_SYNTAX.match(text.strip())
        if match is None:
            raise pytest.UsageError(
                f"--inject-bias={text!r}: expected OBS:REL[@ETA,MU] with OBS phi2 or n, "
                "e.g. phi2:+0.01 or phi2:+0.01@4.01,1.5"
            )
        point = None
        if match["eta"] is not None:
            point = (float(match["eta"]), float(match["mu"]))
        return cls(match["obs"], float(match["rel"]), point)

    def applies(self, params: Any) -> bool:
        if self.point is None:
            return True
        eta, mu = self.point
        return math.isclose(params.eta, eta, abs_tol=1e-9) and math.isclose(
            params.mu, mu, abs_tol=1e-9
        )

    def describe(self) -> str:
        where = "everywhere" if self.point is None else "at (eta, mu) = {}, {}".format(*self.point)
        return f"INJECTED BIAS: <{self.observable}> x (1 {self.relative:+g}) {where}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--inject-bias",
        default=None,
        metavar="OBS:REL[@ETA,MU]",
        help="test-only: bias the observable OBS (phi2 or n) of every generated ensemble by the "
        "relative amount REL, optionally only at (ETA, MU); the physics tests must then fail",
    )


def _install_bias(config: pytest.Config, bias: InjectedBias) -> None:
    """Wrap generate_ensemble where it is looked up (the package and its module) for the session."""
    import scalar_ml.physics as physics
    from scalar_ml.physics import ensemble as ensemble_mod

    original = ensemble_mod.generate_ensemble

    def biased_generate_ensemble(params, *args, **kwargs):
        ens = original(params, *args, **kwargs)
        if not bias.applies(params):
            return ens
        scaled = getattr(ens, bias.observable) * (1.0 + bias.relative)
        meta = {**ens.meta, "injected_bias": bias.describe()}
        return dataclasses.replace(ens, **{bias.observable: scaled}, meta=meta)

    biased_generate_ensemble.__doc__ = original.__doc__
    for module in (physics, ensemble_mod):
        module.generate_ensemble = biased_generate_ensemble

    def restore() -> None:
        for module in (physics, ensemble_mod):
            module.generate_ensemble = original

    config.add_cleanup(restore)


_BIAS_KEY = pytest.StashKey[InjectedBias]()


def pytest_configure(config: pytest.Config) -> None:
    text = config.getoption("--inject-bias")
    if text:
        bias = InjectedBias.parse(text)
        config.stash[_BIAS_KEY] = bias
        _install_bias(config, bias)  # before collection: test modules import the wrapper


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    if _BIAS_KEY in config.stash:
        lines.append(config.stash[_BIAS_KEY].describe() + " (--inject-bias: failures expected)")
    if os.environ.get("REQUIRE_SERVICES") == "1":
        lines.append("REQUIRE_SERVICES=1: tests marked 'services' fail instead of skipping")
    return lines


# ---------------------------------------------------------------------------- services
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under REQUIRE_SERVICES=1 a skipped ``services`` test is reported as a failure."""
    report = yield
    if (
        report.skipped
        and os.environ.get("REQUIRE_SERVICES") == "1"
        and item.get_closest_marker("services") is not None
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"REQUIRE_SERVICES=1 but the service is unavailable: {reason}"
    return report
