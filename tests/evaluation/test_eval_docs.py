"""Every command of docs/evaluation.md and docs/experiments.md runs (tiny sizes appended; logs/example -> a temp dir)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from app_helpers import subprocess_env
from doc_pages import doc_page
from evaluation_helpers import TINY_SAMPLER, TINY_TRAIN

from scalar_ml.evaluation.grid import list_grids
from scalar_ml.evaluation.reproduce import experiment_names, load_plans
from scalar_ml.paths import PROJECT_ROOT

EXPERIMENTS = experiment_names()
DOCS = PROJECT_ROOT / "docs"

#: Appended to every documented evaluate.py command: few configurations, short chains, two sizes.
TINY_EVAL = [*TINY_SAMPLER, "grid.n_configs=8", "progress=false"]
SMALL_GRID = [
    "grid.lattices=[8x8,16x16]",
    "grid.eta=[4.01,4.25]",
    "grid.mu=[1.0,1.5]",
    "grid.worms=[0,5]",
]


def doc_commands() -> list[str]:
    """The ``python ...`` lines of the ```bash blocks of the evaluation and experiments pages, in order."""
    text = doc_page("evaluation") + doc_page("experiments")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [
        line.strip()
        for b in blocks
        for line in b.splitlines()
        if line.strip().startswith("python ")
    ]


def test_doc_commands_name_existing_scripts_grids_and_experiments() -> None:
    commands = doc_commands()
    assert len(commands) >= 9
    grids, seen_experiments = set(list_grids()), set()
    for cmd in commands:
        args = shlex.split(cmd)
        assert args[1] in ("train.py", "evaluate.py", "-m"), cmd
        if args[1] != "-m":
            assert (PROJECT_ROOT / args[1]).is_file()
        else:
            assert args[2] == "scalar_ml.evaluation.reproduce"
        for a in args:
            if a.startswith("grid="):
                assert a.split("=", 1)[1] in grids, cmd
            if a.startswith("experiment="):
                seen_experiments.add(a.split("=", 1)[1])
    assert seen_experiments <= set(EXPERIMENTS)
    # every experiment is in a table of a docs page (docs/experiments.md; the symmetry study's are
    # in docs/symmetry.md)
    pages = [p.read_text() for p in DOCS.glob("*.md")]
    table = {e for text in pages for e in re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.M)}
    assert set(EXPERIMENTS) <= table


def _adapt(args: list[str], tmp: Path, n: int) -> tuple[list[str], Path | None]:
    """Tiny sizes for a documented command; returns (argv, run dir of an evaluate command)."""
    args = [a.replace("logs/example", str(tmp / "example")) for a in args]
    if args[1] == "train.py":
        extra = list(TINY_TRAIN)
        exp = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), None)
        if exp is not None:  # the experiment's smoke scale: one seed, two small networks
            (plan,) = load_plans([exp], "smoke", tmp)
            extra += [o for o in plan.train_overrides if not o.startswith("trainer.max_epochs")]
        return [sys.executable, *args[1:], *extra], None
    if args[1] == "evaluate.py":
        run_dir = tmp / f"eval{n}"
        extra = [*TINY_EVAL, f"hydra.run.dir={run_dir}"]
        if "grid=counting" in args:
            extra += SMALL_GRID
        return [sys.executable, *args[1:], *extra], run_dir
    # python -m scalar_ml.evaluation.reproduce ...
    if "--scale" not in args and "--dry-run" not in args:  # the reduced run itself: plan only
        args += ["--dry-run", "--out", str(tmp / "reduced")]
    if "--dry-run" not in args:
        args += ["--data-dir", str(tmp / "cache")]
    return [sys.executable, *args[1:]], None


@pytest.mark.slow
def test_doc_commands_run(tmp_path: Path) -> None:
    env = subprocess_env(tmp_path / "cache", tmp_path)
    for n, cmd in enumerate(doc_commands()):
        argv, run_dir = _adapt(shlex.split(cmd), tmp_path, n)
        proc = subprocess.run(
            argv, cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=900
        )
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        if run_dir is not None:
            assert (run_dir / "evaluation.csv").is_file(), cmd
            if "logger=tensorboard" in cmd:
                assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*")), cmd
        if "--scale smoke" in cmd:
            page = tmp_path / "example" / "smoke" / "results.md"
            assert page.is_file() and "## Task 3" in page.read_text()
    assert (tmp_path / "example" / "counting_eq" / "checkpoints" / "last.ckpt").is_file()
