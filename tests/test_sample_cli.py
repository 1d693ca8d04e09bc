"""``python -m scalar_ml.sample``: outputs, the free-field known answer, μ scans and bad input.

A few subprocess runs check the real command line (stdout purity, exit codes, run-directory
clean-up); the many bad-input cases are checked in-process on configs composed by Hydra, and the
output plumbing (json/table/scan/cache=false) in-process with an injected cheap generator.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scalar_ml import sample
from scalar_ml.data import cache as cache_mod
from scalar_ml.paths import CONF_DIR
from scalar_ml.physics.ensemble import Ensemble

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("sample", overrides=overrides)


def _cli(tmp_path: Path, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCALAR_ML_DATA_DIR": str(tmp_path / "data"), "HYDRA_FULL_ERROR": "0"}
    cmd = [
        sys.executable,
        "-m",
        "scalar_ml.sample",
        f"hydra.run.dir={tmp_path / 'run'}",
        *overrides,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout
    )


def _files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


# --------------------------------------------------------------------------- configs
def test_config_groups_compose_with_documented_values():
    cfg = _compose([])
    assert cfg.task_name == "sample" and cfg.format == "table" and cfg.cache is True
    assert cfg.out is None and cfg.scan.mu is None and cfg.n_configs >= 1
    assert dict(cfg.physics) == {"eta": 4.01, "lam": 1.0, "mu": 1.0}
    assert dict(cfg.sampler) == {
        "n_chains": 8,
        "n_therm": None,
        "sweeps_between": None,
        "progress": True,
    }
    expected_physics = {
        "free": (4.5, 0.0, 0.3),
        "detection_a": (4.25, 1.0, 1.0),
        "detection_b": (4.01, 1.0, 1.5),
    }
    for name, values in expected_physics.items():
        p = _compose([f"physics={name}"]).physics
        assert (p.eta, p.lam, p.mu) == values
    names = sorted(p.stem for p in (CONF_DIR / "lattice").glob("*.yaml"))
    two = ["8x8", "16x16", "32x32", "64x64", "60x4", "100x5", "125x8", "200x10"]
    more = ["8x8x8", "12x12x12", "16x16x16", "24x24x24", "32x8x8", "4x4x4x4", "8x8x8x8"]
    more += ["60x4x4", "100x5x5", "60x6x6", "100x8x8"]
    assert names == sorted(two + more)
    for name in names:
        lat = _compose([f"lattice={name}"]).lattice
        if name in two:
            assert f"{lat.nt}x{lat.nx}" == name and lat.shape is None  # time first
        else:
            assert lat.nt is None and lat.nx is None and "x".join(map(str, lat.shape)) == name
        assert len(sample.parse_config(_compose([f"lattice={name}"])).requests) == 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["physics.eta=0"], r"physics: eta must be > 0"),
        (["physics.eta=-1"], r"physics: eta must be > 0"),
        (["physics.lam=-0.5"], r"physics: lam must be >= 0"),
        (["physics.lam=0", "physics.mu=1.0"], r"physics: the free theory \(lam = 0\) does not"),
        (["physics=free", "physics.mu=0.7"], r"free theory"),
        (["physics=free", "scan.mu=[0.1,0.9]"], r"free theory.*\(in scan.mu\)"),
        (["lattice.nt=1"], r"lattice.nt must be >= 2"),
        (["lattice.nx=0"], r"lattice.nx must be >= 2"),
        (["n_configs=0"], r"n_configs must be an integer >= 1"),
        (["n_configs=-3"], r"n_configs must be an integer >= 1"),
        (["seed=-1"], r"seed must be an integer >= 0"),
        (["sampler.n_chains=0"], r"sampler.n_chains must be an integer >= 1"),
        (["sampler.sweeps_between=0"], r"sampler.sweeps_between"),
        (["format=xml"], r"format must be one of table, json, got 'xml'"),
        (["out=result.txt"], r"out must end in \.npz"),
        (["out=/nonexistent_dir_scalar_ml/x.npz"], r"directory '/nonexistent_dir_scalar_ml' does"),
        (["+foo=1"], r"unknown config key 'foo'"),
        (["+physics.etaa=1"], r"unknown config key 'physics.etaa'"),
        (["scan.mu=[]"], r"scan.mu must be a non-empty list"),
        (["scan.mu=[0.9,abc]"], r"scan.mu\[1\] must be a finite number"),
        (["scan.mu=[0.9,0.9]"], r"repeated"),
        (["scan.mu=[0.9,1.0]", "out=x.npz"], r"out cannot be combined with scan.mu"),
        (["cache=maybe"], r"cache must be true or false"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(overrides, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _compose([f"paths.data_dir={tmp_path / 'data'}", *overrides])
    with pytest.raises(sample.SampleConfigError, match=match):
        sample.run(cfg, tmp_path / "run")
    assert _files(tmp_path) == []  # no cache dir, no run dir, no out file


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["physics.eta=abc"], r"physics.eta"),
        (["lattice.nt=8.5"], r"lattice.nt"),
        (["physics.etaa=1"], r"physics.etaa"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_at_composition(overrides, match) -> None:
    """The schemas (scalar_ml/schemas.py) make Hydra refuse them before any run directory exists."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as refused:
        _compose(overrides)
    assert re.search(match, str(refused.value) + str(refused.value.__cause__))


# --------------------------------------------------------------------------- output plumbing
def _fake_generate(params, lattice, n_configs, seed, **opts) -> Ensemble:
    rng = np.random.default_rng([seed, int(1000 * params.mu)])
    configs = np.zeros((n_configs, 4, lattice.nt, lattice.nx), np.int32)
    configs[:, 0] = rng.integers(0, 2, size=(n_configs, 1, lattice.nx))
    n = configs[:, 0].mean(axis=(1, 2))
    phi2 = 0.3 + 0.01 * rng.standard_normal(n_configs)
    meta = {"acceptance": {"worm": 0.4}, "proposals_per_s": 1e7, "configs_per_s": 5.0e3}
    return Ensemble(configs, n, phi2, phi2**2, meta)


@pytest.fixture
def fake_sampler(monkeypatch):
    calls = []

    def gen(*args, **kwargs):
        calls.append((args, kwargs))
        return _fake_generate(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "_default_generator", lambda: (gen, None))
    import scalar_ml.physics.ensemble as ens_mod

    monkeypatch.setattr(ens_mod, "generate_ensemble", gen, raising=False)
    return calls


def test_run_json_only_on_stdout_and_cache_hit(tmp_path, capsys, fake_sampler):
    base = [f"paths.data_dir={tmp_path / 'data'}", "lattice.nt=4", "lattice.nx=4", "n_configs=50"]
    result = sample.run(_compose([*base, "format=json", "seed=3"]), tmp_path / "run1")
    out = capsys.readouterr().out
    assert json.loads(out) == result  # stdout is exactly the JSON object
    assert json.loads((tmp_path / "run1" / "summary.json").read_text()) == result
    for key in ("n", "phi2", "phi4"):
        assert set(result[key]) >= {"mean", "err", "tau_int"}
    assert result["n_configs"] == 50 and result["acceptance"] == {"worm": 0.4}
    assert result["proposals_per_s"] == 1e7 and result["configs_per_s"] == 5e3
    assert len(fake_sampler) == 1
    assert fake_sampler[0][1]["progress"] is False  # stderr is not a terminal under pytest
    # same request again: served by the cache, printed as a table
    sample.run(_compose([*base, "seed=3"]), tmp_path / "run2")
    assert len(fake_sampler) == 1
    table = capsys.readouterr().out
    assert "<|phi|^2>" in table and f"{result['phi2']['mean']:.6f}" in table
    # cache=false: generated afresh, nothing new in the cache
    before = _files(tmp_path / "data")
    sample.run(_compose([*base, "seed=3", "cache=false"]), tmp_path / "run3")
    assert len(fake_sampler) == 2 and _files(tmp_path / "data") == before


def test_run_scan_writes_csv_png_and_a_table_per_mu(tmp_path, capsys, fake_sampler):
    mus = [0.8, 0.9, 1.0]
    cfg = _compose(
        [
            f"paths.data_dir={tmp_path / 'data'}",
            "lattice.nt=4",
            "lattice.nx=4",
            "n_configs=40",
            f"scan.mu=[{','.join(map(str, mus))}]",
        ]
    )
    result = sample.run(cfg, tmp_path / "run")
    assert [s["mu"] for s in result["scan"]] == mus
    printed = capsys.readouterr().out
    assert all(f"mu={m:g}" in printed for m in mus)
    assert printed.count("<|phi|^4>") == len(mus)
    with open(tmp_path / "run" / "scan.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["mu"]) for r in rows] == mus
    for r, s in zip(rows, result["scan"], strict=True):
        assert float(r["n_mean"]) == s["n"]["mean"] and float(r["phi2_err"]) == s["phi2"]["err"]
    assert (tmp_path / "run" / "scan.png").read_bytes()[:8] == PNG_MAGIC
    assert len(list((tmp_path / "data" / "ensembles").glob("*.npz"))) == len(mus)
    # format=json: the whole scan as one JSON object, served from the cache
    again = sample.run(OmegaConf.merge(cfg, {"format": "json"}), tmp_path / "run_json")
    assert json.loads(capsys.readouterr().out) == again == result
    assert len(fake_sampler) == len(mus)


# --------------------------------------------------------------------------- real command line
def test_cli_free_field_json_out_and_known_answer(tmp_path):
    from scalar_ml.physics.free_field import free_field_observables
    from scalar_ml.physics.observables import flux_divergence

    out = tmp_path / "ens.npz"
    proc = _cli(
        tmp_path,
        "physics=free",
        "lattice=8x8",
        "n_configs=1000",
        "seed=5",
        "format=json",
        f"out={out}",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # nothing but the JSON object on stdout
    for key in ("n", "phi2", "phi4"):
        assert set(result[key]) >= {"mean", "err", "tau_int"}
        assert result[key]["err"] > 0
    for key in ("acceptance", "proposals_per_s", "configs_per_s", "n_configs"):
        assert key in result
    assert result["n_configs"] == 1000
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == result
    # the known answer, within 4 sigma, with the power stated: 1000 configurations resolve 5 % of
    # <|phi|^2> = 0.321 at 8 sigma (measured sigma 0.0016); the 1 % free-field checks are in
    # tests/physics/test_sampler_exact.py, this one checks that the command line reports them
    n_exact, phi2_exact = free_field_observables(4.5, 0.3, nt=8, nx=8)
    assert result["phi2"]["err"] <= 0.05 * phi2_exact / 8, result["phi2"]
    assert result["n"]["err"] <= 0.002, result["n"]  # <n> = 0.0065: only a coarse check
    assert abs(result["phi2"]["mean"] - phi2_exact) < 4 * result["phi2"]["err"]
    assert abs(result["n"]["mean"] - n_exact) < 4 * result["n"]["err"]
    with np.load(out, allow_pickle=False) as z:
        configs, n, phi2 = z["configs"], z["n"], z["phi2"]
    assert configs.shape == (1000, 4, 8, 8) and configs.dtype.kind == "i"
    assert n.shape == phi2.shape == (1000,) and n.dtype == phi2.dtype == np.float64
    assert not np.any(flux_divergence(configs)) and configs[:, 2:].min() >= 0
    # the estimates come from every sweep after the thermalisation; the stored configurations'
    # own mean and error are reported next to them, computed from exactly the stored values
    assert n.mean() == pytest.approx(result["n"]["configs_mean"], rel=1e-12, abs=1e-15)
    assert phi2.mean() == pytest.approx(result["phi2"]["configs_mean"], rel=1e-12)
    for key in ("n", "phi2", "phi4"):
        assert result[key]["estimator"] == "sweeps"
        assert result[key]["err"] < result[key]["configs_err"], result[key]
    assert len(list((tmp_path / "data" / "ensembles").glob("*.npz"))) == 1


def test_cli_scan_writes_csv_and_png(tmp_path):
    proc = _cli(tmp_path, "lattice.nt=4", "lattice.nx=4", "n_configs=200", "scan.mu=[0.5,1.5]")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("<|phi|^2>") == 2
    rows = list(csv.DictReader(open(tmp_path / "run" / "scan.csv")))
    assert [float(r["mu"]) for r in rows] == [0.5, 1.5]
    assert float(rows[1]["n_mean"]) > float(rows[0]["n_mean"])  # charge grows with mu
    assert (tmp_path / "run" / "scan.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("overrides", "rc", "message"),
    [
        (["physics.eta=-1", "out=ens.npz"], 2, "error: physics: eta must be > 0"),
        (
            ["physics.etaa=1"],
            2,
            "error: unknown config key 'physics.etaa'; did you mean physics.eta?",
        ),
        (["lattice.nt=abc"], 2, "error: lattice.nt=abc: 'abc' is not an integer"),
    ],
)
def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path, overrides, rc, message):
    proc = _cli(tmp_path, *overrides)
    assert proc.returncode == rc
    assert message in proc.stderr
    assert proc.stdout == ""
    assert _files(tmp_path) == []  # no run dir, no cache, no out file
