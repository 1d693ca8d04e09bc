"""docs/training.md cannot rot: every documented command composes (fast) and runs (slow).

Commands are the lines of the ``bash`` blocks, except those marked ``# not run by tests``. For the
runs, tiny data/sampler overrides are appended to ``python train.py`` lines (only for keys the
command does not set itself), ``logs/`` is redirected to a temporary directory,
``tensorboard --logdir`` becomes ``tensorboard --inspect --logdir`` and ``wandb sync`` gets
``--dry-run``; each block runs as one ``bash -e`` script from the repository root.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from app_helpers import subprocess_env
from doc_pages import doc_page, run_scripts, runnable_blocks
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from training_helpers import TINY_SAMPLER, WARNING_FILTERS

from scalar_ml.paths import CONF_DIR
from scalar_ml.tasks import task_names

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]

#: Appended to documented `python train.py` commands for the runs (keys the command sets win).
DOC_TINY = [
    *TINY_SAMPLER,
    "data.n_train=32",
    "data.n_val=16",
    "data.n_test=16",
    "data.batch_size=16",
    "trainer.max_epochs=1",
]


def training_blocks() -> list[list[str]]:
    return runnable_blocks(doc_page("training"))


def train_commands() -> list[str]:
    return [
        line for block in training_blocks() for line in block if line.startswith("python train.py")
    ]


def _keys(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0].lstrip("+~") for a in args if "=" in a}


def test_docs_have_the_required_recipes() -> None:
    commands = train_commands()
    text = " ".join(commands)
    assert "python train.py task=counting model=eq" in commands  # the quickstart, verbatim
    for needle in (
        "task=observables",
        "model.preset=",
        "model=custom",
        "-m seed=0,1,2",
        "logger=wandb",
        "ckpt_path=",
        "data.physics.eta=",
        "data.points.a.mu=",
        "debug=fdr",
    ):
        assert needle in text, needle
    others = [
        line
        for block in training_blocks()
        for line in block
        if not line.startswith("python train.py")
    ]
    assert any(line.startswith("tensorboard --logdir") for line in others)
    assert any(line.startswith("wandb sync") for line in others)


@pytest.mark.parametrize("command", train_commands())
def test_documented_command_composes(command: str) -> None:
    """Fast: the overrides of every documented command compose (sweeps: their first value)."""
    args = shlex.split(command.replace("$RUN", "/tmp/some_run"))[2:]
    args = [a for a in args if a not in ("-m", "--multirun")]
    parsed = OverridesParser.create().parse_overrides(args)
    plain = []
    for override, arg in zip(parsed, args, strict=True):
        if override.is_sweep_override():
            plain.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}")
        else:
            plain.append(arg)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=plain)
    finally:
        GlobalHydra.instance().clear()
    assert cfg.task.name in task_names()


def _prepare(block: list[str], logs: Path) -> str:
    out = ["set -euo pipefail"]
    for line in block:
        line = re.sub(r"(?<![\w./-])logs/", f"{logs}/", line)
        if line.startswith("python train.py"):
            args = shlex.split(line.replace("$RUN", "RUNPLACEHOLDER"))[2:]
            extra = [
                a
                for a in [*DOC_TINY, f"paths.log_dir={logs}"]
                if a.split("=", 1)[0] not in _keys(args)
            ]
            line = line + " " + " ".join(shlex.quote(a) for a in extra)
        elif line.startswith("tensorboard --logdir"):
            line = line.replace("tensorboard --logdir", "tensorboard --inspect --logdir", 1)
        elif line.startswith("wandb sync"):
            line = line.replace("wandb sync", "wandb sync --dry-run", 1)
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.slow
def test_documented_commands_run(tiny_cache: Path, tmp_path: Path) -> None:
    """Slow: run every runnable block for real (tiny data) in order, as a user would."""
    logs = tmp_path / "logs"
    env = subprocess_env(tiny_cache, tmp_path)
    run_scripts([_prepare(block, logs) for block in training_blocks()], env, timeout=900)
    runs = sorted((logs / "train" / "runs").iterdir())
    assert all((r / "metrics.json").exists() for r in runs), [
        r for r in runs if not (r / "metrics.json").exists()
    ]
    assert list((logs / "train" / "multiruns").glob("*/2/metrics.json"))  # the 3-seed multirun
    assert list((logs / "debug" / "runs").glob("*/metrics.json"))
    assert list(logs.glob("train/runs/*/wandb/offline-run-*"))
