"""Every command shown in README.md and docs/*.md is run or composed by a test, or says why not.

A line of a ```bash block is covered when

- its page has its own runner (:data:`RUNNERS`: the test that runs the page's blocks as a user
  would, with tiny sizes), or
- it starts one of the apps (``python train.py``, ``python evaluate.py``,
  ``python -m scalar_ml.sample`` or a console script): its overrides are composed here, as the app
  composes them, so every key, option and type exists; the sampling page's commands also run here
  (slow), or
- it lists the networks (``python -m scalar_ml.models``): run here, in-process, or
- it says ``# not run by tests: <why>``.

The README's two commands are the contract of the project: ``.ci/run`` installs the same way and
runs the test command verbatim.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from doc_pages import (
    README,
    REPO,
    SKIP_MARK,
    bash_blocks,
    doc_page,
    documented_pages,
    runnable_blocks,
    strip_comment,
)

from scalar_ml.cli import composition_error

#: Pages whose commands a dedicated test runs (tiny sizes appended, outputs in a temp dir).
RUNNERS = {
    "training.md": "tests/training/test_docs.py",
    "evaluation.md": "tests/evaluation/test_eval_docs.py",
    "experiments.md": "tests/evaluation/test_eval_docs.py",
    "search.md": "tests/search/test_search_sweep.py",
    "symmetry.md": "tests/training/test_symmetry_docs.py",
    "tutorial.md": "tests/test_tutorial.py",
}
#: Command prefixes of the Hydra apps -> the config they compose.
APPS = {
    "python train.py": "train",
    "python evaluate.py": "evaluate",
    "python -m scalar_ml.sample": "sample",
    "scalar-ml-train": "train",
    "scalar-ml-evaluate": "evaluate",
    "scalar-ml-sample": "sample",
}
MODELS = ("python -m scalar_ml.models", "scalar-ml-models")
#: Placeholders of the pages, replaced by a path for composing.
PLACEHOLDERS = {"<that run dir>": "/tmp/run", "<sweep dir>": "/tmp/sweep", "$RUN": "/tmp/run"}
#: The README's contract: the install-and-run command and the test command.
README_COMMANDS = [
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python train.py',
    ".venv/bin/python -m pytest",
]


def _app(line: str) -> tuple[str, list[str]] | None:
    """``(config name, overrides)`` if ``line`` starts an app, else ``None``."""
    for prefix, config in APPS.items():
        if line == prefix or line.startswith(prefix + " "):
            for placeholder, value in PLACEHOLDERS.items():
                line = line.replace(placeholder, value)
            return config, shlex.split(line)[len(prefix.split()) :]
    return None


def app_lines() -> list[tuple[str, str]]:
    """``(page, line)`` of every app command on every page but training.md (composed by its own test)."""
    out = []
    for page in documented_pages():
        if page.name == "training.md":
            continue
        for block in bash_blocks(page.read_text()):
            for line in block:
                line = strip_comment(line).strip()
                if _app(line) is not None:
                    out.append((page.name, line))
    return out


def test_readme_keeps_its_two_commands() -> None:
    lines = [line for b in bash_blocks(README.read_text()) for line in b]
    assert lines == README_COMMANDS
    ci = (REPO / ".ci" / "run").read_text()
    assert "\n.venv/bin/python -m pytest\n" in ci  # the test command, verbatim
    assert '.venv/bin/pip install -q -e ".[dev' in ci


def test_every_documented_command_is_covered() -> None:
    uncovered = []
    for page in documented_pages():
        if page == README:
            continue
        for block in bash_blocks(page.read_text()):
            for line in block:
                if SKIP_MARK in line:
                    reason = line.split(SKIP_MARK, 1)[1]
                    assert re.match(r":\s*\S", reason), f"{page.name}: say why: {line}"
                    continue
                command = strip_comment(line).strip()
                if page.name in RUNNERS or _app(command) is not None:
                    continue
                if command.startswith(MODELS):
                    continue
                uncovered.append(f"{page.name}: {command}")
    assert not uncovered, (
        "commands no test runs: add a runner to RUNNERS (tests/test_doc_commands.py) or mark "
        f"the line '{SKIP_MARK}: <why>': {uncovered}"
    )


@pytest.mark.parametrize("runner", sorted(set(RUNNERS.values())))
def test_runners_read_their_pages(runner: str) -> None:
    text = (REPO / runner).read_text()
    pages = [page for page, test in RUNNERS.items() if test == runner]
    for page in pages:
        assert f'doc_page("{page[:-3]}")' in text, f"{runner} does not read docs/{page}"


@pytest.mark.parametrize(("page", "line"), app_lines())
def test_documented_app_command_composes(page: str, line: str) -> None:
    app = _app(line)
    assert app is not None
    config, args = app
    assert composition_error(config, args) is None


def test_pages_have_app_commands() -> None:
    """The parametrisation above is not empty (a negative control for the collection)."""
    pages = {page for page, _ in app_lines()}
    assert {"sampling.md", "scaling.md", "install.md", "evaluation.md", "tutorial.md"} <= pages
    assert _app("python train.py -m seed=0,1") == ("train", ["-m", "seed=0,1"])
    assert _app("python train.pyx") is None


def test_network_listing_commands_run(capsys: pytest.CaptureFixture[str]) -> None:
    from scalar_ml.models.__main__ import main

    lines = [
        line
        for block in runnable_blocks(doc_page("networks"))
        for line in block
        if line.startswith(MODELS)
    ]
    assert len(lines) == 3
    for line in lines:
        argv = shlex.split(line)[3:]
        assert main(argv) == 0, line
        out = capsys.readouterr().out
        assert "counting/eq_1" in out or "1800" in out, line


#: Small sizes for the documented sampling commands (the command's own values are replaced).
TINY_SAMPLE = {
    "n_configs": "64",
    "sampler.n_chains": "2",
    "sampler.n_therm": "20",
    "sampler.sweeps_between": "2",
    "sampler.progress": "false",
}


@pytest.mark.slow
def test_sampling_commands_run(tmp_path: Path) -> None:
    """docs/sampling.md's commands, as a user runs them (sizes made small), from a work directory."""
    env = {
        **os.environ,
        "SCALAR_ML_DATA_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "ignore",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    blocks = runnable_blocks(doc_page("sampling"))
    lines = [line for block in blocks for line in block]
    assert len(lines) == 3 and all(line.startswith("python -m scalar_ml.sample") for line in lines)
    for line in lines:
        tokens = shlex.split(line)
        tokens = [t for t in tokens if t.split("=", 1)[0] not in TINY_SAMPLE]
        tokens += [f"{k}={v}" for k, v in TINY_SAMPLE.items()]
        tokens += [f"paths.log_dir={tmp_path / 'logs'}"]
        proc = subprocess.run(
            [sys.executable, *tokens[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
    assert (tmp_path / "free.npz").is_file()
    assert list((tmp_path / "logs" / "sample" / "runs").glob("*/scan.png"))
    assert len(list((tmp_path / "logs" / "sample" / "runs").glob("*/summary.json"))) == 3
