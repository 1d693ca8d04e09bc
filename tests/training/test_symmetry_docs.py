"""docs/symmetry.md cannot rot: its Python runs and prints what it says, its commands compose (fast)
and run on tiny data (slow), the refusal it quotes is the data module's, its experiments exist."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from app_helpers import compose_app, subprocess_env
from doc_pages import SKIP_MARK, bash_blocks, doc_page, run_scripts
from doc_pages import strip_comment as _strip_comment
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from test_docs import DOC_TINY, _keys
from training_helpers import REPO, TINY_OBS, WARNING_FILTERS

from scalar_ml.config import ConfigError
from scalar_ml.evaluation.reproduce import experiment_names

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]

PAGE = REPO / "docs" / "symmetry.md"


def _text() -> str:
    return doc_page("symmetry")


def runnable_blocks() -> list[list[str]]:
    return [
        [_strip_comment(line) for line in b if SKIP_MARK not in line] for b in bash_blocks(_text())
    ]


def commands() -> list[str]:
    return [line for block in runnable_blocks() for line in block if line.startswith("python ")]


def _plain(args: list[str]) -> list[str]:
    """A command's overrides with sweeps replaced by their first value (as test_docs does)."""
    args = [a for a in args if a not in ("-m", "--multirun")]
    out = []
    for override, arg in zip(OverridesParser.create().parse_overrides(args), args, strict=True):
        if override.is_sweep_override():
            out.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}")
        else:
            out.append(arg)
    return out


def test_the_python_example_prints_what_its_comments_say() -> None:
    (block,) = re.findall(r"```python\n(.*?)```", _text(), flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(PAGE), "exec"), {})
    printed = out.getvalue().splitlines()
    expected = [line.split("# ", 1)[1] for line in block.splitlines() if "print(" in line]
    assert len(printed) == len(expected) == 3
    for got, want in zip(printed, expected, strict=True):
        assert got.startswith(want.removesuffix("...").strip()), (got, want)


@pytest.mark.parametrize("command", [c for c in commands() if c.startswith("python train.py")])
def test_documented_train_command_composes(command: str, tmp_path: Path) -> None:
    args = _plain(shlex.split(command)[2:])
    try:
        cfg = compose_app("train", args, tmp_path / "run", tmp_path / "cache")
    finally:
        GlobalHydra.instance().clear()
    assert cfg.task.name and cfg.model


def test_documented_commands_cover_the_page() -> None:
    text = " ".join(commands())
    for needle in ("model=eqr", "data.augment=symmetry", "'data.augment=[P]'", "hparams_search="):
        assert needle in text, needle
    table = set(re.findall(r"^\| `(symmetry_[a-z_]+)` \|", _text(), flags=re.M))
    assert table == {n for n in experiment_names() if n.startswith("symmetry_")}
    reproduce = [line for b in bash_blocks(_text()) for line in b if "reproduce" in line]
    assert len(reproduce) == 2 and all(SKIP_MARK in line for line in reproduce)


def test_the_documented_study_commands_plan_every_symmetry_experiment(tmp_path, capsys) -> None:
    from scalar_ml.evaluation.reproduce import main

    lines = [line for b in bash_blocks(_text()) for line in b if "reproduce" in line]
    printed = ""
    for i, line in enumerate(lines):
        args = shlex.split(_strip_comment(line))[3:]
        out = args.index("--out")
        args[out + 1] = str(tmp_path / f"out{i}")
        assert main([*args, "--dry-run"]) == 0
        printed += capsys.readouterr().out
        assert not (tmp_path / f"out{i}").exists()
    for name in (n for n in experiment_names() if n.startswith("symmetry_")):
        assert f"train.py -m experiment={name} " in printed


def test_the_quoted_refusal_is_the_data_modules(tmp_path: Path) -> None:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    quoted = re.search(r"`(data\.augment=\['T'\]: .*?)`\.", _text(), flags=re.S)
    assert quoted is not None
    try:
        cfg = compose_app(
            "train", ["task=observables", "data.augment=[T]"], tmp_path / "r", tmp_path / "c"
        )
        with pytest.raises(InstantiationException) as info:
            instantiate(cfg.data)
    finally:
        GlobalHydra.instance().clear()
    cause = info.value.__cause__
    assert isinstance(cause, ConfigError)
    assert str(cause) == " ".join(quoted.group(1).split())
    assert not (tmp_path / "c").exists()  # refused before any sampling


def _prepare(block: list[str], logs: Path) -> str:
    lines = ["set -euo pipefail"]
    for line in block:
        line = re.sub(r"(?<![\w./-])logs/", f"{logs}/", line)
        if line.startswith("python train.py"):
            args = shlex.split(line)[2:]
            tiny = [*DOC_TINY, f"paths.log_dir={logs}", "logger=none"]
            if "task=observables" in args:
                tiny += TINY_OBS
            if "-m" in args:  # the search: two trials on the tiny data
                small = {"hydra.sweeper.n_trials": "2", "data.n_train": "32"}
                small["trainer.max_epochs"] = "1"
                args = [
                    f"{a.split('=', 1)[0]}={small[a.split('=', 1)[0]]}"
                    if a.split("=", 1)[0] in small
                    else a
                    for a in args
                ]
            extra = [a for a in tiny if a.split("=", 1)[0] not in _keys(args)]
            line = shlex.join(["python", "train.py", *args, *extra])
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_documented_commands_run(tiny_cache: Path, tmp_path: Path) -> None:
    """Slow: every runnable block for real (tiny data; the search with two trials)."""
    logs = tmp_path / "logs"
    env = subprocess_env(tiny_cache, tmp_path)
    run_scripts([_prepare(block, logs) for block in runnable_blocks()], env, timeout=1200)
    assert len(list((logs / "train" / "runs").glob("*/metrics.json"))) == 5
    assert list((logs / "search").rglob("top_trials.md"))
