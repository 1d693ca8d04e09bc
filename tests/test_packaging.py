"""The package works outside the checkout: configs and presets ship in the wheel, the apps run anywhere.

Fast checks: every subpackage is listed in ``pyproject.toml`` (the list is explicit because the
top-level ``conf/`` is mapped into the package), the console scripts name existing ``main``
functions, and the configs are found in the checkout.

The wheel test (``slow``; ``.ci/run`` runs it explicitly): build the wheel from a copy of the
source tree, install it into a fresh virtual environment and, from a temporary directory with the
checkout nowhere on ``sys.path``, sample a tiny ensemble, build a preset, train one tiny epoch,
evaluate it and check the one-line errors. The fresh environment takes the wheel's dependencies
from the running environment (a ``.pth`` line naming its ``site-packages``, whose own ``.pth``
files, such as an editable install of this project, are not processed) instead of installing
~1.7 GB again; that the wheel's declared requirements are met there is checked. With
``SCALAR_ML_WHEEL_FULL_INSTALL=1`` pip installs the dependencies into the fresh environment instead
(from its cache or the index: minutes and network).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from scalar_ml.paths import CONF_DIR, PACKAGE_DIR, PROJECT_ROOT, SOURCE_ROOT, app_command

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_every_subpackage_is_packaged() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(PROJECT_ROOT).parts)
        for p in PACKAGE_DIR.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found | {"scalar_ml.conf"} == listed
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"scalar_ml.conf": "conf"}
    assert PYPROJECT["tool"]["setuptools"]["package-data"] == {"scalar_ml.conf": ["**/*.yaml"]}
    assert not list((PROJECT_ROOT / "conf").rglob("*.yml"))  # only *.yaml ships


def test_console_scripts_name_the_apps() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) == {
        "scalar-ml-train",
        "scalar-ml-evaluate",
        "scalar-ml-sample",
        "scalar-ml-models",
    }
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), target


def test_checkout_finds_its_configs() -> None:
    assert SOURCE_ROOT == PROJECT_ROOT and CONF_DIR == PROJECT_ROOT / "conf"
    assert app_command("train") == [sys.executable, str(PROJECT_ROOT / "train.py")]
    assert app_command("sample") == [sys.executable, "-m", "scalar_ml.sample"]
    with pytest.raises(ValueError, match="unknown app 'fit'"):
        app_command("fit")


# ---------------------------------------------------------------------------------- the wheel
#: Top-level folders of a checkout that are not build input (caches, environments, outputs).
_TOP_LEVEL_IGNORED = {
    ".git", "logs", "data", "build", "dist", "site", ".numba_cache", ".wandb_cache",
    ".pytest_cache", ".ruff_cache", "outputs", "multirun", "wandb",
}  # fmt: skip


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory).resolve() == PROJECT_ROOT
    return {
        n
        for n in names
        if n == "__pycache__"
        or n.endswith(".egg-info")
        or (top and (n in _TOP_LEVEL_IGNORED or n.startswith(".venv")))
    }


#: Tiny sizes: the point is that everything is found and runs, not the numbers.
TINY_SAMPLER = [
    "sampler.n_chains=2",
    "sampler.n_therm=20",
    "sampler.sweeps_between=2",
    "sampler.progress=false",
]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def build_wheel(tmp: Path) -> Path:
    """``pip wheel`` of a copy of the source tree (no stale build/ of the checkout can leak in)."""
    src = tmp / "src"
    shutil.copytree(PROJECT_ROOT, src, ignore=_ignore)
    dist = tmp / "dist"
    _ok(
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
            cwd=tmp,
            env=dict(os.environ),
        )
    )
    (wheel,) = dist.glob("scalar_ml-*.whl")
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed; returns its ``bin`` directory."""
    venv = tmp / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _ok(_run([sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=env))
    python = venv / "bin" / "python"
    site = Path(
        _ok(
            _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                 cwd=tmp, env=env)
        ).stdout.strip()
    )  # fmt: skip
    if os.environ.get("SCALAR_ML_WHEEL_FULL_INSTALL") == "1":
        _ok(_run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp, env=env))
    else:
        deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        (site / "scalar_ml_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
        _ok(
            _run(
                [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                cwd=tmp,
                env=env,
            )
        )
    return venv / "bin"


#: Run inside the fresh environment: where everything comes from, and the wheel's requirements.
_WHERE = r"""
import json, sys
import importlib.metadata as md
from packaging.requirements import Requirement
import scalar_ml, scalar_ml.paths as p
unmet = []
for text in md.requires("scalar-ml") or []:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        unmet.append(f"{req} (missing)")
        continue
    if version not in req.specifier and not req.specifier.contains(version, prereleases=True):
        unmet.append(f"{req} (found {version})")
print(json.dumps({
    "file": scalar_ml.__file__, "conf": str(p.CONF_DIR),
    "source_root": None if p.SOURCE_ROOT is None else str(p.SOURCE_ROOT),
    "root": str(p.PROJECT_ROOT), "sys_path": sys.path, "unmet": unmet,
    "version": scalar_ml.__version__,
}))
"""


@pytest.mark.slow
def test_wheel_works_outside_the_checkout(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    bin_dir = fresh_venv(tmp_path, wheel)
    venv = bin_dir.parent
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "SCALAR_ML_DATA_DIR", "VIRTUAL_ENV", "HYDRA_FULL_ERROR")
    }
    env.update(
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        PYTHONWARNINGS="ignore",
    )
    python = str(bin_dir / "python")

    where = json.loads(_ok(_run([python, "-c", _WHERE], cwd=work, env=env)).stdout)
    assert Path(where["file"]).is_relative_to(venv), where["file"]
    assert Path(where["conf"]).is_relative_to(venv) and where["source_root"] is None
    assert Path(where["root"]) == work  # logs/ and data/ go to the working directory
    assert not any((work / p).resolve() == PROJECT_ROOT for p in where["sys_path"])
    assert where["unmet"] == [], where["unmet"]
    assert where["version"] == "0.1.0"

    # a tiny ensemble, with the configs of the wheel, into ./data (the default cache)
    out = _ok(
        _run(
            [str(bin_dir / "scalar-ml-sample"), "lattice.nt=4", "lattice.nx=4", "n_configs=40",
             *TINY_SAMPLER, "format=json", "out=ens.npz"],
            cwd=work, env=env,
        )
    )  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["n_configs"] == 40 and (work / "ens.npz").is_file()
    assert list((work / "data" / "ensembles").glob("*.npz"))
    assert list((work / "logs" / "sample" / "runs").glob("*/summary.json"))

    # a preset, from the presets in the wheel
    code = (
        "from scalar_ml.models import build_preset, list_presets\n"
        "net = build_preset('counting/eq_1')\n"
        "print(len(list_presets()), sum(p.numel() for p in net.parameters()))\n"
    )
    n_presets, n_params = _ok(_run([python, "-c", code], cwd=work, env=env)).stdout.split()
    assert int(n_presets) >= 15 and int(n_params) == 1800
    listing = json.loads(
        _ok(_run([str(bin_dir / "scalar-ml-models"), "--json"], cwd=work, env=env)).stdout
    )
    assert "counting/eq_1" in {row["name"] for row in listing}

    # one tiny epoch of the quickstart, run directory under ./logs
    _ok(
        _run(
            [str(bin_dir / "scalar-ml-train"), "task=counting", "model=eq", "seed=0", *TINY_SAMPLER,
             "data.n_train=16", "data.n_val=8", "data.n_test=8", "data.batch_size=8",
             "trainer.max_epochs=1", "logger=none", "callbacks.rich_progress_bar=null",
             "++trainer.enable_progress_bar=false"],
            cwd=work, env=env,
        )
    )  # fmt: skip
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "counting" and metrics["epochs"] == 1
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()

    # the evaluation grids ship too
    _ok(
        _run(
            [python, "-m", "scalar_ml.evaluate", f"ckpt_path={run_dir}", "grid=counting_small",
             "grid.n_configs=4", "grid.lattices=[8x8]", "grid.eta=[4.25]", "grid.mu=[1.0]",
             "grid.worms=[0,5]", *TINY_SAMPLER, "progress=false", "plots=false",
             "hydra.run.dir=eval"],
            cwd=work, env=env,
        )
    )  # fmt: skip
    assert (work / "eval" / "evaluation.csv").is_file()

    # a mistake: one line naming the console script, exit 2, nothing written
    bad = _run([str(bin_dir / "scalar-ml-train"), "data.n_trian=5"], cwd=work, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "scalar-ml-train: error: unknown config key 'data.n_trian'; did you mean data.n_train?"
    )
    assert len(list((work / "logs" / "train" / "runs").iterdir())) == 1


@pytest.mark.slow
def test_editable_install_works_outside_the_checkout(tmp_path: Path) -> None:
    """``pip install -e .`` into a fresh venv: the apps run from another directory on the checkout's
    configs, and logs and data stay in the checkout (as the docs say)."""
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _ok(_run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env))
    python = venv / "bin" / "python"
    site = _ok(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
             cwd=tmp_path, env=env)
    ).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "scalar_ml_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _ok(
        _run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e",
             str(PROJECT_ROOT)],
            cwd=tmp_path, env=env,
        )
    )  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    where = json.loads(_ok(_run([str(python), "-c", _WHERE], cwd=work, env=env)).stdout)
    assert Path(where["file"]).parent == PACKAGE_DIR
    assert Path(where["conf"]) == CONF_DIR and Path(where["root"]) == PROJECT_ROOT
    listing = json.loads(
        _ok(_run([str(venv / "bin" / "scalar-ml-models"), "--json"], cwd=work, env=env)).stdout
    )
    assert "counting/eq_1" in {row["name"] for row in listing}
    bad = _run([str(venv / "bin" / "scalar-ml-train"), "lattice.nt=abc"], cwd=work, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "scalar-ml-train: error: lattice.nt=abc: 'abc' is not an integer"
