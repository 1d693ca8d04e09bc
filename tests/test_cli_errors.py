"""A user's mistake through the real command lines: one line naming the key and the fix, exit 2,
no half-written run directory, and the traceback only with ``HYDRA_FULL_ERROR=1``.

Two kinds of mistakes (``scalar_ml/cli.py``): those Hydra finds while composing the config (an
unknown key or option, a wrong type, an unparsable override, a required value left unset), which
are reported before Hydra creates a run directory; and bad values, a missing checkpoint or a network
that does not fit the lattice or the checkpoint, found inside the job before any work, after which
the run directory Hydra created is removed again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scalar_ml.cli import composition_error
from scalar_ml.models import build_preset
from scalar_ml.paths import CONF_DIR, PROJECT_ROOT

#: Keep any accidental training tiny (the checks fire before it; this bounds a regression).
TINY = [
    "sampler.n_chains=2",
    "sampler.n_therm=20",
    "sampler.sweeps_between=2",
    "sampler.progress=false",
    "data.n_train=16",
    "data.n_val=8",
    "data.n_test=8",
    "trainer.max_epochs=1",
    "logger=none",
]


def run_app(
    script: str, tmp_path: Path, *args: str, full_error: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python <script> <args> hydra.run.dir=<tmp>/run`` from the checkout."""
    env = {
        **os.environ,
        "SCALAR_ML_DATA_DIR": str(tmp_path / "data"),
        "HYDRA_FULL_ERROR": "1" if full_error else "0",
        "WANDB_MODE": "offline",
        "PYTHONWARNINGS": "ignore",
    }
    sweep = [f"hydra.sweep.dir={tmp_path / 'sweep'}"] if "-m" in args else []
    cmd = [sys.executable, script, *args, f"hydra.run.dir={tmp_path / 'run'}", *sweep]
    return subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], prog: str, message: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1] == f"{prog}: error: {message}", proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in lines[-1]
    errors = [line for line in lines if "error" in line.lower()]
    assert errors == [lines[-1]], proc.stderr[-3000:]  # nothing else is reported as an error


def fake_checkpoint(path: Path, preset: str) -> Path:
    """A checkpoint as train.py writes it, as far as resuming reads it: the weights and their origin."""
    net = build_preset(preset)
    task = preset.split("/")[0]
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"task": task, "preset": preset, "spec": net.spec},
            "scalar_ml": {"seed": 0},
        },
        path,
    )
    return path


# ----------------------------------------------------------------- composition (before Hydra runs)
COMPOSITION_CASES = [
    (["data.n_trian=5"], "unknown config key 'data.n_trian'; did you mean data.n_train?"),
    (
        ["+foo=1"],
        "unknown config key 'foo' (train.yaml has the top-level keys: callbacks, ckpt_path, "
        "cpu_threads, data, divergence_penalty, invalid_architecture_penalty, lattice, logger, "
        "model, optimized_metric, paths, sampler, seed, tags, task, task_name, test, train, "
        "trainer); nothing reads a new top-level key",
    ),
    (["lattice.nt=abc"], "lattice.nt=abc: 'abc' is not an integer"),
    (["data.points.a.mu=high"], "data.points.a.mu=high: 'high' is not a number"),
    (
        ["task=countin"],
        "task=countin: no such option of task; did you mean task=counting? (options: counting, "
        "detection, localisation, observables)",
    ),
    (
        ["callbacks.early_stopping.patience=3"],
        "unknown config key 'callbacks.early_stopping.patience': 'early_stopping' is an option of "
        "the config group callbacks that is not selected; select it first "
        "(callbacks=early_stopping, or a list such as 'callbacks=[default,early_stopping]')",
    ),
    (
        ["model.layers=[{type: conv"],
        "cannot parse the override 'model.layers=[{type: conv': no viable alternative at input "
        "'[{type: conv' (quote values with spaces or brackets for the shell: 'key=[a, b]'; "
        "grammar: https://hydra.cc/docs/advanced/override_grammar/basic/)",
    ),
    (  # a multirun is checked with the first value of each sweep, before any job starts
        ["-m", "seed=0,1", "data.n_trian=8,16"],
        "unknown config key 'data.n_trian'; did you mean data.n_train?",
    ),
]


@pytest.mark.parametrize(("args", "message"), COMPOSITION_CASES)
def test_train_composition_errors_are_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = run_app("train.py", tmp_path, *args)
    assert_one_line(proc, "train.py", message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()
    assert proc.stdout == ""


def test_composition_error_accepts_the_documented_kinds_of_command_lines() -> None:
    """No false alarms: sweeps, Optuna's interval syntax, launchers, experiments, custom layers."""
    for args in (
        ["-m", "hparams_search=counting_eq", "model.arch.n_conv=choice(2,3)"],
        ["-m", "hparams_search=counting_eq", "model.lr=tag(log, interval(1e-4,1e-1))"],
        ["-m", "hydra/launcher=local", "seed=0,1", "cpu_threads=1"],
        ["-m", "seed=range(0,3)", "data.n_train=100,200"],
        ["-m", "experiment=counting_generalization"],
        ["~model/scheduler", "trainer.gradient_clip_val=null"],
        ["physics@data.points.b=detection_a", "data.points.b.mu=1.25", "lattice=16x16"],
        ["++trainer.enable_progress_bar=false", "callbacks.rich_progress_bar=null"],
        ["model=custom", "model.layers=[{type: conv, kernel: 2, out: 8}]"],
        ["--cfg", "job"],
        ["--help"],
    ):
        assert composition_error("train", args) is None, args
    assert composition_error("evaluate", ["ckpt_path=x", "grid=counting_small"]) is None
    assert composition_error("sample", ["physics=free", "format=json"]) is None


def test_full_error_shows_hydras_own_report(tmp_path: Path) -> None:
    proc = run_app("train.py", tmp_path, "lattice.nt=abc", full_error=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "could not be converted to Integer" in proc.stderr


# ----------------------------------------------------------------- values (inside the job)
def test_train_bad_value_is_one_line_and_leaves_no_run_dir(tmp_path: Path) -> None:
    proc = run_app("train.py", tmp_path, *TINY, "data.batch_size=0")
    assert_one_line(proc, "train.py", "data.batch_size must be an integer >= 1, got 0")
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "data").exists()  # nothing was sampled


def test_train_bad_trainer_value_is_refused_before_training(tmp_path: Path) -> None:
    proc = run_app("train.py", tmp_path, *TINY, "trainer.max_epochs=1.5")
    assert_one_line(
        proc, "train.py", "trainer.max_epochs must be null or an integer >= -1, got 1.5"
    )
    assert not (tmp_path / "run").exists()


def test_train_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "nope.ckpt"
    proc = run_app("train.py", tmp_path, *TINY, f"ckpt_path={missing}")
    assert_one_line(
        proc,
        "train.py",
        f"ckpt_path '{missing}' does not exist; give a checkpoint file, e.g. "
        "ckpt_path=<run dir>/checkpoints/last.ckpt",
    )
    assert not (tmp_path / "run").exists()


def test_train_network_that_does_not_fit_the_lattice(tmp_path: Path) -> None:
    proc = run_app("train.py", tmp_path, *TINY, "task=counting", "model=fl", "lattice=16x16")
    assert_one_line(
        proc,
        "train.py",
        "counting/fl_1 takes only 8×8 lattices (flattening fixes the input size), but the training "
        "lattice is 16×16: choose lattice=8x8 or an eq/st model",
    )
    assert not (tmp_path / "run").exists()


def test_train_resume_with_another_network(tmp_path: Path) -> None:
    ckpt = fake_checkpoint(tmp_path / "eq.ckpt", "counting/eq_1")
    proc = run_app("train.py", tmp_path, *TINY, "model=st", f"ckpt_path={ckpt}")
    assert_one_line(
        proc,
        "train.py",
        f"ckpt_path '{ckpt}' holds a counting network (counting/eq_1), but this run builds a "
        "counting network (counting/st_1): resume with the checkpoint's network (task=counting "
        "model.preset=counting/eq_1) or train anew without ckpt_path",
    )
    assert not (tmp_path / "run").exists()


def test_evaluate_without_checkpoint(tmp_path: Path) -> None:
    proc = run_app("evaluate.py", tmp_path)
    assert_one_line(
        proc, "evaluate.py", "ckpt_path is required: give ckpt_path=... on the command line"
    )
    assert not (tmp_path / "run").exists()


def test_evaluate_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    proc = run_app("evaluate.py", tmp_path, f"ckpt_path={missing}")
    assert_one_line(proc, "evaluate.py", f"ckpt_path '{missing}' does not exist")
    assert not (tmp_path / "run").exists()

    proc = run_app("evaluate.py", tmp_path, f"ckpt_path={missing}", "grid=countnig")
    assert_one_line(
        proc,
        "evaluate.py",
        "grid=countnig: no such option of grid; did you mean grid=counting? (options: "
        + ", ".join(sorted(p.stem for p in (CONF_DIR / "grid").glob("*.yaml")))
        + ")",
    )

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    proc = run_app("evaluate.py", tmp_path, f"ckpt_path={garbage}")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"evaluate.py: error: cannot read checkpoint '{garbage}': ")
    )
    assert not (tmp_path / "run").exists()
