"""Report, importances, retrain overrides and aggregation, in-process (no training)."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from winners import WINNERS

from scalar_ml.paths import CONF_DIR
from scalar_ml.search import aggregate as aggregate_mod
from scalar_ml.search.report import (
    parameter_importances,
    parse_fixed_value,
    trial_records,
    write_report,
)
from scalar_ml.search.retrain import format_override, ranked_trials, retrain_overrides
from scalar_ml.search.space import ARCH_DEFAULTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- importances
def test_importances_find_the_parameter_that_matters() -> None:
    rng = random.Random(0)
    trials = []
    for _ in range(40):
        params = {
            "kernel": rng.choice([1, 2, 3]),
            "noise": rng.choice(["a", "b"]),
            "lr": rng.uniform(1e-4, 1e-2),
        }
        objective = 10.0 ** (-params["kernel"]) * rng.uniform(0.9, 1.1)
        trials.append((params, objective))
    importances, reason = parameter_importances(trials)
    assert reason == ""
    assert max(importances, key=importances.get) == "kernel"
    assert importances["kernel"] > 0.9 and sum(importances.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("trials", "reason"),
    [
        ([({"a": 1}, 1.0), ({"a": 2}, 2.0)], "at least 3 completed trials (have 2)"),
        ([({"a": i}, 1.0) for i in range(4)], "same objective"),
        ([({"a": 1}, float(i + 1)) for i in range(4)], "no sampled parameter varies"),
    ],
)
def test_importances_explain_why_there_are_none(trials: list[Any], reason: str) -> None:
    importances, why = parameter_importances(trials)
    assert importances == {} and reason in why


# --------------------------------------------------------------------------- report of a study
def _study_with_every_kind_of_trial() -> Any:
    import optuna
    from optuna.distributions import CategoricalDistribution, LogUniformDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(study_name="unit", direction="minimize")
    dists = {
        "model.arch.n_conv": CategoricalDistribution([1, 2, 3]),
        "model.arch.kernel_1": CategoricalDistribution([1, 2, 3]),
        "model.optimizer.lr": LogUniformDistribution(1e-4, 1e-2),
    }
    fixed = {"model.arch.pool_0": "avg", "model.arch.pool_1": "avg", "data.batch_size": "8"}
    points = [  # (n_conv, kernel_1, lr, state, value)
        (2, 1, 1e-3, TrialState.COMPLETE, 0.5),
        (2, 2, 2e-3, TrialState.COMPLETE, 0.2),  # best
        (2, 1, 3e-3, TrialState.COMPLETE, 1.0e6),  # diverged (penalty)
        (2, 3, 1e-3, TrialState.FAIL, None),  # kernel 3 after pooling 4×4 -> 2×2: invalid
        (1, 1, 1e-3, TrialState.FAIL, None),  # valid point that failed
        (2, 2, 1e-3, TrialState.RUNNING, None),
    ]
    for n_conv, kernel_1, lr, state, value in points:
        study.add_trial(
            create_trial(
                params={
                    "model.arch.n_conv": n_conv,
                    "model.arch.kernel_1": kernel_1,
                    "model.optimizer.lr": lr,
                },
                distributions=dists,
                value=value,
                state=state,
                user_attrs=fixed,
            )
        )
    return study


def test_report_classifies_trials_and_writes_its_files(tmp_path: Path) -> None:
    study = _study_with_every_kind_of_trial()
    base = {**ARCH_DEFAULTS, "channels_0": 4, "channels_1": 8, "bias": False}
    records = write_report(
        study,
        tmp_path,
        task="counting",
        family="fl",
        base_arch=base,
        lattice_size=(4, 4),
        penalty=1.0e6,
        top=5,
        trials_before=2,
    )
    assert [r.status for r in records] == ["ok", "ok", "diverged", "invalid", "failed", "running"]
    # fixed overrides (strings, as the sweeper stores them) reach the architecture
    assert records[0].arch is not None and records[0].arch["pool_0"] == "avg"
    # n_conv 2, kernel 2: Conv2x2(4,4) AvgPool Conv2x2(4,8) AvgPool Flatten Linear(8,1), no bias
    assert records[1].n_parameters == 4 * 4 * 4 + 4 * 8 * 4 + 8 * 1 * 1
    assert (
        records[1].architecture
        == "Conv2x2(4,4) AvgPool Conv2x2(4,8) AvgPool Flatten Linear(8,1) no-bias"
    )
    assert [r.number for r in ranked_trials(records)] == [1, 0]
    table = (tmp_path / "top_trials.md").read_text()
    assert (
        "6 trials in the study (1 diverged, 1 failed, 1 invalid, 2 ok, 1 running); 4 run by this sweep."
        in table
    )
    assert table.index("| 1 | 1 | 0.2 |") < table.index("| 2 | 0 | 0.5 |")
    assert "kernel 3×3 is larger than the 2×2 lattice" in table
    assert "## Running or interrupted trials" in table and "--seeds 10" in table
    assert "No param_importances.png: parameter importances need at least 3" in table
    assert len((tmp_path / "trials.csv").read_text().splitlines()) == 7
    assert (tmp_path / "optimization_history.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "param_importances.png").exists()


# --------------------------------------------------------------------------- retrain overrides
@pytest.mark.parametrize(
    "value",
    [None, True, False, 3, -2.5e-05, "sum", "none", "x y", "it's", "true", [0, 5], ["a", 1.5]],
)
def test_format_override_round_trips_through_hydra(value: Any) -> None:
    parsed = OverridesParser.create().parse_override(format_override("a.b", value)).value()
    assert parsed == value or (isinstance(value, tuple) and list(value) == parsed)


def test_retrain_overrides_compose_into_the_trials_configuration(tmp_path: Path) -> None:
    study = _study_with_every_kind_of_trial()
    family, winner = WINNERS["counting/st_3"]
    base = {**ARCH_DEFAULTS, **winner}
    (record,) = [
        r
        for r in trial_records(
            study, task="counting", family=family, base_arch=base, lattice_size=(8, 8), penalty=1e6
        )
        if r.number == 1
    ]
    record.fixed.update(
        {"hparams_search": "counting_st", "data.worms": "[0,1]", "lattice.nt": "4", "seed": "3"}
    )
    overrides = retrain_overrides(
        record,
        task="counting",
        family=family,
        seeds=[0, 1, 2],
        sweep_dir=tmp_path / "retrain dir",
        extra=["trainer.max_epochs=7", "data.batch_size=16"],
    )
    assert "seed=0,1,2" in overrides and not any(o.startswith("hparams_search") for o in overrides)
    assert f"hydra.sweep.dir='{tmp_path / 'retrain dir'}'" in overrides
    assert sum(o.startswith("data.batch_size=") for o in overrides) == 1
    single_run = [o for o in overrides if not o.startswith(("seed=", "hydra."))]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=single_run)
    arch = OmegaConf.to_container(cfg.model.arch)
    assert arch == {**base, "n_conv": 2, "kernel_1": 2, "pool_0": "avg", "pool_1": "avg"}
    assert cfg.model.family == family and cfg.task.name == "counting"
    assert cfg.model.optimizer.lr == pytest.approx(2e-3)
    assert cfg.data.batch_size == 16 and cfg.trainer.max_epochs == 7
    assert list(cfg.data.worms) == [0, 1] and cfg.lattice.nt == 4


def test_parse_fixed_value_reads_the_sweepers_strings() -> None:
    assert parse_fixed_value("k", "[0, 5]") == [0, 5]
    assert parse_fixed_value("k", "false") is False and parse_fixed_value("k", "null") is None
    assert parse_fixed_value("k", 7) == 7


# --------------------------------------------------------------------------- aggregate
def _fake_runs(directory: Path, values: list[tuple[int, float | None, float | None]]) -> None:
    for job, (seed, val, test) in enumerate(values):
        run = directory / str(job)
        run.mkdir(parents=True)
        metrics: dict[str, Any] = {"seed": seed, "n_parameters": 308, "diverged": val is None}
        if val is not None:
            metrics.update({"val/loss": val, "test/loss": test})
        (run / "metrics.json").write_text(json.dumps(metrics))


def test_aggregate_command_writes_mean_and_median(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_runs(
        tmp_path / "eq_1", [(0, 1e-4, 2e-4), (1, 3e-4, 4e-4), (2, 8e-4, 1e-2), (3, None, None)]
    )
    _fake_runs(tmp_path / "eq_2", [(0, 2e-5, 5e-5)])
    status = aggregate_mod.main(
        [str(tmp_path / "eq_1"), str(tmp_path / "eq_2"), "--out", str(tmp_path / "t")]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "| eq_1 | 4 | 1 | 308 | 4.000e-04 | 3.000e-04 | 3.533e-03 | 4.000e-04 |" in out
    assert "| eq_2 | 1 | 0 | 308 | 2.000e-05 | 2.000e-05 | 5.000e-05 | 5.000e-05 |" in out
    assert (tmp_path / "t.md").read_text().strip() == out.strip()
    assert len((tmp_path / "t_runs.csv").read_text().splitlines()) == 6
    assert (tmp_path / "t.csv").read_text().splitlines()[1].startswith("eq_1,4,1,308,0.0004")


def test_aggregate_refuses_a_directory_without_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        aggregate_mod.main([str(tmp_path)])
    assert info.value.code == 2
    assert "no metrics.json below" in capsys.readouterr().err


# --------------------------------------------------------------------------- retrain command line
def _sweep_dir_with_study(tmp_path: Path) -> Path:
    import optuna

    source = _study_with_every_kind_of_trial()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    stored = optuna.create_study(study_name="unit", storage=storage, direction="minimize")
    stored.add_trials(source.get_trials())
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    record = {
        "study_name": "unit",
        "storage": storage,
        "task": "counting",
        "family": "fl",
        "lattice_size": [4, 4],
        "arch": {**ARCH_DEFAULTS, "bias": False},
        "divergence_penalty": 1.0e6,
    }
    OmegaConf.save(OmegaConf.create(record), sweep / "search.yaml")
    return sweep


def test_retrain_dry_run_prints_one_command_per_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scalar_ml.search import retrain

    sweep = _sweep_dir_with_study(tmp_path)
    argv = [
        str(sweep),
        "--seeds",
        "3",
        "trainer.max_epochs=5",
        "--rank",
        "1",
        "--rank",
        "2",
        "--dry-run",
    ]
    assert retrain.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# rank 1: trial 1, objective 0.2, Conv2x2(4,8) AvgPool")
    assert lines[2].startswith("# rank 2: trial 0, objective 0.5")
    for command, trial in ((lines[1], 1), (lines[3], 0)):
        assert command.startswith(
            "python train.py -m task=counting model=searchable model.family=fl "
        )
        assert " seed=0,1,2 " in command and command.endswith(" trainer.max_epochs=5")
        assert (
            f"hydra.sweep.dir={sweep}/retrain/rank{1 if trial == 1 else 2}-trial{trial}" in command
        )
    assert not (sweep / "retrain").exists()  # a dry run runs nothing
    with pytest.raises(SystemExit) as info:
        retrain.main([str(sweep), "--rank", "3", "--dry-run"])
    assert info.value.code == 2 and "has 2 completed trial(s)" in capsys.readouterr().err


def test_retrain_asks_for_the_storage_when_the_password_was_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scalar_ml.search import retrain

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    record = {"study_name": "s", "storage": "postgresql://user:***@host/db", "task": "counting"}
    OmegaConf.save(OmegaConf.create(record), sweep / "search.yaml")
    with pytest.raises(SystemExit) as info:
        retrain.main([str(sweep), "--dry-run"])
    assert info.value.code == 2 and "pass the real one with --storage" in capsys.readouterr().err


def test_report_of_an_eqr_search_counts_with_its_group(tmp_path: Path) -> None:
    """The point group of an eqr search (model.group) sizes its networks: |H| copies per layer."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="eqr", direction="minimize")
    study.add_trial(
        create_trial(
            params={"model.arch.n_conv": 2},
            distributions={"model.arch.n_conv": CategoricalDistribution([1, 2])},
            value=0.1,
            state=TrialState.COMPLETE,
        )
    )
    base = {**ARCH_DEFAULTS, "kernel_0": 1, "kernel_1": 1, "channels_0": 2, "channels_1": 3}
    base.update(bias=False, global_pool="sum", group_pool="sum")

    def count(group: list[str] | None) -> int | None:
        (record,) = write_report(
            study, tmp_path, task="counting", family="eqr", base_arch=base,
            lattice_size=(8, 8), penalty=1.0e6, group=group,
        )  # fmt: skip
        assert record.architecture.startswith("LiftConv1x1(4,2) GroupConv1x1(2,3)")
        return record.n_parameters

    # lift 4·2, group |H|·2·3, Linear(3, 1)
    assert count(None) == 4 * 2 + 4 * 2 * 3 + 3  # the default <P, TC>, |H| = 4
    assert count(["S", "T", "P", "C"]) == 4 * 2 + 16 * 2 * 3 + 3
