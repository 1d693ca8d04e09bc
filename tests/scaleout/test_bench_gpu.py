"""benchmarks/bench_gpu.py: exits 0 with a message without CUDA; its code path runs on CPU (smoke).

The GPU numbers themselves need a CUDA machine (``python benchmarks/bench_gpu.py``); here the same
functions run with ``--accelerator cpu`` on a tiny data set, fp32 and bf16-mixed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scaleout_helpers import REPO, env_for

SCRIPT = REPO / "benchmarks" / "bench_gpu.py"


def test_without_cuda_it_says_so_and_exits_0(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script benchmarks it instead")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=REPO,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA device available" in proc.stdout
    assert not (tmp_path / "data").exists()  # nothing sampled, nothing trained


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_cpu_smoke_run_reports_rates_for_both_precisions(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "rows.json"
    argv = ["--accelerator", "cpu", "--tasks", "counting", "--n-train", "32", "--epochs", "1"]
    argv += ["--batch-size", "16", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    assert bench.main(argv) == 0
    (row,) = json.loads(out.read_text())
    assert row["task"] == "counting" and row["preset"] == "counting/eq_1"
    assert row["lattice"] == [8, 8]
    for key in ("cache_to_tensors_configs_per_s", "host_to_device_configs_per_s"):
        assert row[key] > 0, key
    for precision in ("32-true", "bf16-mixed"):
        assert row[precision]["samples_per_s"] > 0
        assert 0 < row[precision]["final_train_loss"] < float("inf")
