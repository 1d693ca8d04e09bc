"""``python -m scalar_ml.models``: the preset listing for people and for scripts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scalar_ml.models.__main__ import main
from scalar_ml.paths import PROJECT_ROOT


def run_cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "scalar_ml.models", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def test_json_listing_parses_with_the_seed_counts(preset_parameter_counts: dict[str, int]) -> None:
    rows = json.loads(run_cli("--json"))
    assert len(rows) == len(preset_parameter_counts) == 23
    assert all(set(row) == {"name", "family", "task", "params", "input_size"} for row in rows)
    assert {row["name"]: row["params"] for row in rows} == preset_parameter_counts
    sizes = {row["name"]: row["input_size"] for row in rows}
    assert sizes["observables/fl"] == [60, 4]
    assert sizes["counting/fl_2"] == [8, 8]
    assert sizes["observables/eq"] is None and sizes["detection/st"] is None
    assert {row["name"].split("/")[0]: row["task"] for row in rows} == {
        "observables": "observables",
        "detection": "detection",
        "counting": "counting",
        "localisation": "localisation",
    }


def test_table_listing(
    capsys: pytest.CaptureFixture[str], seed_parameter_counts: dict[str, int]
) -> None:
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "task", "input", "size", "params"]
    assert len(lines) == 24  # header, the seed's 15 winners, 5 eqr and 3 localisation presets
    row = next(line.split() for line in lines if line.startswith("observables/fl"))
    assert row == [
        "observables/fl",
        "fl",
        "observables",
        "60×4",
        str(seed_parameter_counts["observables/fl"]),
    ]


def test_single_preset_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["counting/eq_3", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["family"] == "eq" and shown["layers"][-1] == {"type": "global_pool", "mode": "sum"}
    assert main(["counting/eq_9"]) == 2
    assert "unknown preset 'counting/eq_9'; available: observables/eq" in capsys.readouterr().err
