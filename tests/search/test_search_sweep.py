"""Real sweeps in subprocesses: the commands of docs/search.md, run with a tiny data set appended.

- the first sweep writes the study (SQLite), optimization_results.yaml, the report and the PNGs;
- running the same command again adds trials to the same study (3 then 6), with new points;
- a sweep whose trials diverge (forced NaN: lr = 1e10) or do not fit the lattice finishes;
- (slow) the report, retrain and aggregate commands; seed 0 of the retrain reproduces the trial.

Trial counts and states are read from the SQLite file directly, not through optuna.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from doc_pages import doc_page

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PENALTY = 1.0e6
#: A tiny counting data set on 4×4 (64 configurations per physics point), one epoch, quiet.
TINY = [
    "lattice.nt=4",
    "lattice.nx=4",
    "data.worms=[0,1]",
    "data.n_val=16",
    "data.n_test=16",
    "logger=none",
    "callbacks.rich_progress_bar=null",
    "sampler.progress=false",
]
#: Values of the documented commands replaced by tiny ones.
SHRINK = {"hydra.sweeper.n_trials": "3", "data.n_train": "32", "trainer.max_epochs": "1"}


def doc_commands() -> list[str]:
    """The commands of the ```bash blocks of docs/search.md, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", doc_page("search"), flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SCALAR_ML_DATA_DIR": str(root / "data"),
        "HYDRA_FULL_ERROR": "1",
        "PYTHONWARNINGS": "ignore",
    }


def _run(command: str, root: Path, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """Run one documented command under bash (globs expand), made tiny, with `python` = this interpreter."""
    command = command.replace("<sweep dir>", str(root / "sweep"))
    assert command.startswith("python "), command
    if command.startswith("python train.py"):
        tokens = shlex.split(command)
        for i, token in enumerate(tokens):
            key = token.split("=", 1)[0]
            if key in SHRINK:
                tokens[i] = f"{key}={SHRINK[key]}"
        tokens += [*TINY, f"paths.log_dir={root / 'logs'}"]
        command = shlex.join(tokens[1:])
    elif command.startswith("python -m scalar_ml.search.retrain"):
        command = command.replace("--seeds 10", "--seeds 2").removeprefix("python ")
    else:
        command = command.removeprefix("python ")
    result = subprocess.run(
        ["bash", "-c", f"{shlex.quote(sys.executable)} {command}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(root),
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(
            f"`{command}` exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def _trials(db: Path, study: str) -> list[tuple[int, str, float | None]]:
    """(number, state, value) of every trial of ``study``, read with sqlite3."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT t.number, t.state, v.value FROM trials t "
            "JOIN studies s ON s.study_id = t.study_id "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id "
            "WHERE s.study_name = ? ORDER BY t.number",
            (study,),
        ).fetchall()
    return [(int(n), str(state), value) for n, state, value in rows]


def _params(db: Path, study: str) -> dict[int, frozenset[tuple[str, float]]]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT t.number, p.param_name, p.param_value FROM trials t "
            "JOIN studies s ON s.study_id = t.study_id "
            "JOIN trial_params p ON p.trial_id = t.trial_id WHERE s.study_name = ?",
            (study,),
        ).fetchall()
    out: dict[int, set[tuple[str, float]]] = {}
    for number, name, value in rows:
        out.setdefault(int(number), set()).add((str(name), float(value)))
    return {n: frozenset(p) for n, p in out.items()}


def _sweep_dirs(root: Path) -> list[Path]:
    return sorted((root / "logs" / "search" / "multiruns").glob("*"))


@dataclass
class DocStudy:
    root: Path
    db: Path
    first: Path
    second: Path
    trials_after_first: list[tuple[int, str, float | None]]
    trials_after_second: list[tuple[int, str, float | None]]


@pytest.fixture(scope="module")
def doc_study(tmp_path_factory: pytest.TempPathFactory) -> DocStudy:
    """The two documented sweep commands, run one after the other (3 trials each)."""
    root = tmp_path_factory.mktemp("search")
    sweep_commands = [c for c in doc_commands() if c.startswith("python train.py")]
    assert len(sweep_commands) == 2 and sweep_commands[0] == sweep_commands[1]
    db = root / "logs" / "optuna" / "counting_eq.db"
    _run(sweep_commands[0], root)
    (first,) = _sweep_dirs(root)
    after_first = _trials(db, "counting_eq")
    _run(sweep_commands[1], root)
    (second,) = [d for d in _sweep_dirs(root) if d != first]
    (root / "sweep").symlink_to(second)  # what `<sweep dir>` stands for in the later commands
    return DocStudy(root, db, first, second, after_first, _trials(db, "counting_eq"))


def test_docs_commands_are_the_ones_this_module_runs() -> None:
    kinds = [" ".join(c.split()[:3]) for c in doc_commands()]
    assert kinds == [
        "python train.py -m",
        "python train.py -m",
        "python -m scalar_ml.search.report",
        "python -m scalar_ml.search.retrain",
        "python -m scalar_ml.search.aggregate",
    ]


def test_first_sweep_writes_study_results_table_and_plots(doc_study: DocStudy) -> None:
    sweep = doc_study.first
    assert doc_study.db.is_file()
    assert [(n, s) for n, s, _ in doc_study.trials_after_first] == [
        (i, "COMPLETE") for i in range(3)
    ]
    # the objective of each trial is the val/loss its job wrote (job i = trial i in one sweep)
    for number, _, value in doc_study.trials_after_first:
        metrics = json.loads((sweep / str(number) / "metrics.json").read_text())
        assert metrics["seed"] == 0 and metrics["task"] == "counting"
        assert value == pytest.approx(metrics["val/loss"], rel=1e-12)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == min(v for _, _, v in doc_study.trials_after_first)
    assert {
        "model.arch.n_conv",
        "model.arch.kernel_0",
        "model.optimizer.lr",
        "data.batch_size",
    } <= set(results["best_params"])
    search = yaml.safe_load((sweep / "search.yaml").read_text())
    assert search["study_name"] == "counting_eq" and search["trials_before"] == 0
    assert search["lattice_size"] == [4, 4] and search["family"] == "eq"
    table = (sweep / "top_trials.md").read_text()
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)]
    assert len(rows) == 3, table
    best_row = rows[0].split("|")
    assert int(best_row[2]) == min(doc_study.trials_after_first, key=lambda t: t[2])[0]
    assert int(best_row[4]) > 0 and "Global" in best_row[5]  # parameter count, an eq architecture
    csv_lines = (sweep / "trials.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith(
        "trial,state,status,objective,n_parameters"
    )
    assert (sweep / "optimization_history.png").read_bytes().startswith(PNG_MAGIC)
    importances = sweep / "param_importances.png"
    assert importances.is_file() != ("No param_importances.png" in table)
    if importances.is_file():
        assert importances.read_bytes().startswith(PNG_MAGIC)


def test_rerun_adds_trials_to_the_same_study_with_new_points(doc_study: DocStudy) -> None:
    assert len(doc_study.trials_after_first) == 3
    assert [n for n, _, _ in doc_study.trials_after_second] == list(range(6))
    search = yaml.safe_load((doc_study.second / "search.yaml").read_text())
    first = yaml.safe_load((doc_study.first / "search.yaml").read_text())
    assert search["trials_before"] == 3 and search["sampler_seed"] == first["sampler_seed"] + 3
    params = _params(doc_study.db, "counting_eq")
    assert {params[n] for n in (3, 4, 5)}.isdisjoint({params[n] for n in (0, 1, 2)})
    assert "6 trials in the study" in (doc_study.second / "top_trials.md").read_text()
    results = yaml.safe_load((doc_study.second / "optimization_results.yaml").read_text())
    assert results["best_value"] == min(v for _, _, v in doc_study.trials_after_second)


def test_diverging_and_invalid_trials_do_not_stop_the_sweep(tmp_path: Path) -> None:
    """lr = 1e10 makes every loss NaN; n_conv = 3 puts a 2×2 kernel on a 1×1 pooled lattice."""
    command = shlex.join(
        [
            "python",
            "train.py",
            "-m",
            "hparams_search=counting_fl",
            "hydra.sweeper.n_trials=3",
            "model.optimizer.lr=1e10",
            "data.batch_size=8",
            "data.n_train=32",
            "trainer.max_epochs=1",
            "model.arch.pool_0=avg",
            "model.arch.pool_1=avg",
            "model.arch.pool_2=none",
            "model.arch.kernel_1=1",
            "model.arch.kernel_2=2",
            "model.arch.n_conv=choice(2,3)",
        ]
    )
    _run(command, tmp_path)
    (sweep,) = _sweep_dirs(tmp_path)
    trials = _trials(tmp_path / "logs" / "optuna" / "counting_fl.db", "counting_fl")
    assert len(trials) == 3
    params = _params(tmp_path / "logs" / "optuna" / "counting_fl.db", "counting_fl")
    diverged = [n for n, state, value in trials if state == "COMPLETE" and value == PENALTY]
    invalid = [n for n, state, _ in trials if ("model.arch.n_conv", 1.0) in params[n]]  # index 1: 3
    assert diverged and invalid, f"sampler gave {trials} / {params}: need both kinds of trial"
    for number in diverged:
        if number in invalid:
            continue
        metrics = json.loads((sweep / str(number) / "metrics.json").read_text())
        assert metrics["diverged"] is True and "nan" in metrics["error"]
    for number in invalid:  # penalised (invalid_architecture_penalty), a completed trial TPE sees
        state, value = trials[number][1], trials[number][2]
        assert state == "COMPLETE" and value == PENALTY
    report = (sweep / "top_trials.md").read_text()
    assert "## Diverged trials" in report
    assert "## Architectures that do not fit the lattice" in report
    assert "kernel 2×2 is larger than the 1×1 lattice" in report


@pytest.mark.slow
def test_report_retrain_and_aggregate_commands(doc_study: DocStudy) -> None:
    commands = doc_commands()
    report = _run(commands[2], doc_study.root)
    assert report.stdout.startswith("# Architecture search: counting_eq")
    retrain = _run(commands[3], doc_study.root)
    best_number, _, best_value = min(doc_study.trials_after_second, key=lambda t: t[2])
    run_set = doc_study.second / "retrain" / f"rank1-trial{best_number}"
    runs = {
        json.loads(p.read_text())["seed"]: json.loads(p.read_text())
        for p in run_set.glob("*/metrics.json")
    }
    assert sorted(runs) == [0, 1]
    # seed 0 with the trial's overrides is the trial itself: same objective
    assert runs[0]["val/loss"] == pytest.approx(best_value, rel=1e-6)
    assert runs[1]["val/loss"] != pytest.approx(best_value, rel=1e-6)
    table = (doc_study.second / "retrain" / "aggregate.md").read_text()
    label = f"| rank 1 (trial {best_number}) | 2 | 0 |"
    assert label in table and label in retrain.stdout
    mean = (runs[0]["val/loss"] + runs[1]["val/loss"]) / 2
    assert f"{mean:.3e}" in table
    aggregate = _run(commands[4], doc_study.root)
    assert f"| rank1-trial{best_number} | 2 | 0 |" in aggregate.stdout
    assert (
        doc_study.second / "retrain" / "table.md"
    ).read_text().strip() == aggregate.stdout.strip()
