"""A shared Optuna study on a real PostgreSQL server: two concurrent sweep processes, one study.

The fixture starts a throwaway server (``initdb`` + ``pg_ctl`` from the Debian/PGDG packages) in a
temporary directory, listening on 127.0.0.1 only, on a free port, with trust authentication; as
root it runs the server as ``nobody`` (PostgreSQL refuses to run as root). Two
``python train.py -m hparams_search=counting_eq`` processes with different sampler seeds then run
at the same time against ``hydra.sweeper.storage=postgresql://...``: the study must end with the
union of their trials (2 + 2), every trial number once, every trial complete.

Skipped, with the reason, when the server binaries, the ``psycopg2`` driver or a non-root user
are missing, or when the server does not start; under ``REQUIRE_SERVICES=1`` (``.ci/run``) those
skips are failures (marker ``services``, ``tests/conftest.py``).
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaleout_helpers import REPO, TINY_TRAIN, env_for

#: Tiny search data, as tests/search/test_search_sweep.py: 4×4 counting, one short epoch.
SEARCH_TINY = [
    *TINY_TRAIN,
    "data.worms=[0,1]",
    "data.n_train=32",
    "data.n_val=16",
    "data.n_test=16",
    "trainer.max_epochs=1",
]
STUDY = "shared_counting_eq"
#: A real server: skipped with the reason where it cannot start, a failure under REQUIRE_SERVICES=1.
# Real services take a minute: slow, and run by .ci/run (marker ci) where they are installed.
pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.ci]


def _pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL server binary: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> list[str]:
    """Command prefix that runs the server as a non-root user (empty when not root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root and `runuser` is missing: cannot start PostgreSQL as non-root")
    try:
        import pwd

        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no `nobody` user to run PostgreSQL")
    return [runuser, "-u", "nobody", "--"]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """URL of an empty database on a throwaway PostgreSQL server (stopped and removed afterwards)."""
    pytest.importorskip(
        "psycopg2",
        reason="psycopg2 is not importable (pip install psycopg2-binary)",
        exc_type=ImportError,
    )
    import psycopg2

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found (apt-get install postgresql)"
        )
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="scalar_ml_pg_"))  # not under pytest's 0700 tmp dirs
    if prefix:
        shutil.chown(root, user="nobody")
    data, port = root / "db", _free_port()
    started = False
    try:
        init = subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr.strip()[-500:]}")
        start = subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {port} -k {root} -F",
                "start",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if start.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()} {log.strip()[-500:]}")
        started = True
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        if started:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(root, ignore_errors=True)


def test_two_concurrent_sweeps_share_one_postgres_study(postgres_url: str, tmp_path: Path) -> None:
    """2 processes × 2 trials on one study: 4 trials, numbers 0..3 once each, all complete."""
    import optuna

    env = env_for(tmp_path)  # one ensemble cache, shared by both processes
    procs = []
    for worker, seed in enumerate((11, 22)):
        cmd = [
            "train.py",
            "-m",
            "hparams_search=counting_eq",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage={postgres_url}",
            f"hydra.sweeper.study_name={STUDY}",
            f"hydra.sweeper.sampler.seed={seed}",
            *SEARCH_TINY,
            f"paths.log_dir={tmp_path / f'logs{worker}'}",
            f"hydra.sweep.dir={tmp_path / f'sweep{worker}'}",
        ]
        procs.append(
            subprocess.Popen(
                [sys.executable, *cmd],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name=STUDY, storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({t._trial_id for t in trials}) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [
        t.state for t in trials
    ]
    assert all(t.value is not None and math.isfinite(t.value) for t in trials)
    # Both workers ran two jobs each (sweep subdirectories 0 and 1 with a metrics.json).
    for worker in (0, 1):
        assert sorted(
            p.parent.name for p in (tmp_path / f"sweep{worker}").glob("*/metrics.json")
        ) == [
            "0",
            "1",
        ]
