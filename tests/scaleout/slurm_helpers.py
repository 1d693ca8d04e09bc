"""A throwaway single-node SLURM cluster for the launcher tests: munged, slurmctld and slurmd.

:func:`start_slurm_cluster` writes a ``slurm.conf`` into a fresh directory and starts the three
daemons of Debian's ``slurmctld``/``slurmd``/``munge`` packages (Slurm 22.05 and newer) there:

* one node, this host under its short host name, reachable on 127.0.0.1, with all its CPUs and
  its memory (``RealMemory`` from ``/proc/meminfo``, so that ``--mem`` requests are checked);
* one default partition ``debug``, ``select/cons_tres`` with ``CR_CPU``: jobs asking for one CPU
  each run side by side, as array tasks do on a real cluster;
* authentication through a private munged socket and key (``AuthInfo=socket=…``), controller and
  node daemon on free ports, state, spool, logs and pid files all inside the directory;
* no accounting database (``sacct`` answers "accounting storage is disabled"; submitit then
  falls back to the job's result file, and ``scontrol show job`` still reports finished jobs for
  ``MinJobAge`` = 300 s).

Clients (``sbatch``, ``srun``, ``scontrol``, hence submitit) find the cluster through the
``SLURM_CONF`` variable of :meth:`SlurmCluster.env`. Jobs run as root: the daemons must, to start
processes for users, so without root the cluster is unavailable. Every reason the cluster cannot
come up (a missing binary, a daemon that exits, a node that never turns idle) raises
:class:`SlurmUnavailable` with the daemons' log tails, which the tests turn into a skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: Programs the cluster and its clients need (Debian: slurmctld, slurmd, slurm-client, munge).
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "sinfo", "scontrol", "scancel")
#: How long the node may take to register with the controller and turn idle.
START_TIMEOUT_S = 60.0


class SlurmUnavailable(RuntimeError):
    """The throwaway cluster cannot run here; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, chars: int = 800) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _memory_mb() -> int:
    """The node's RealMemory: MemTotal minus 512 MB for the daemons, in MB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return max(1024, int(line.split()[1]) // 1024 - 512)
    raise SlurmUnavailable("/proc/meminfo has no MemTotal line")


@dataclass
class SlurmCluster:
    """A running single-node cluster; :meth:`stop` ends its jobs and daemons."""

    root: Path
    conf: Path
    node: str
    cpus: int

    def env(self) -> dict[str, str]:
        """Variables that point SLURM clients at this cluster (merge into a subprocess's env)."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *args: str, timeout: float = 30) -> str:
        """Run a SLURM client command against this cluster and return its stdout."""
        proc = subprocess.run(
            list(args),
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def job_records(self, job_id: str) -> list[dict[str, str]]:
        """``scontrol show job -o JOB_ID`` as one dict per job (or array task) record."""
        records = []
        for line in self.command("scontrol", "show", "job", "-o", job_id).splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if fields:
                records.append(fields)
        return records

    def stop(self) -> None:
        """Cancel every job, stop slurmd, slurmctld and munged (SIGTERM, then SIGKILL)."""
        try:
            self.command("scancel", "--full", "--user", "root", timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired, OSError):
            pass
        for name in ("slurmd", "slurmctld", "munged"):
            _stop_daemon(self.root / f"{name}.pid")


def _stop_daemon(pid_file: Path, wait_s: float = 10.0) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _slurm_conf(root: Path, node: str, cpus: int, memory_mb: int) -> str:
    ctld_port, slurmd_port = _free_port(), _free_port()
    return "\n".join(
        [
            "ClusterName=scalarml",
            f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={root / 'munge.socket'}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/builtin",
            "MpiDefault=none",
            "ReturnToService=2",
            f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _start(cmd: list[str], root: Path, env: dict[str, str], log: Path) -> None:
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SlurmUnavailable(
            f"{Path(cmd[0]).name} did not start (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]} | log: {_tail(log)}"
        )


def start_slurm_cluster(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd in ``root`` and wait until the node is idle.

    Raises :class:`SlurmUnavailable` (after stopping whatever did start) when the cluster cannot
    run here.
    """
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        raise SlurmUnavailable(
            f"SLURM/munge binaries not found: {', '.join(missing)} "
            "(apt-get install slurmctld slurmd slurm-client munge)"
        )
    if os.geteuid() != 0:
        raise SlurmUnavailable("slurmd must run as root to start jobs; running as a normal user")
    node = socket.gethostname().split(".")[0]
    try:
        socket.gethostbyname(node)
    except OSError as exc:
        raise SlurmUnavailable(f"this host's name {node!r} does not resolve: {exc}") from exc
    cpus = os.cpu_count() or 1
    for sub in ("state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, node, cpus, _memory_mb()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(root=root, conf=conf, node=node, cpus=cpus)
    try:
        _start(
            [
                shutil.which("munged") or "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={root / 'munge.socket'}",
                f"--pid-file={root / 'munged.pid'}",
                f"--log-file={root / 'munged.log'}",
                f"--seed-file={root / 'munged.seed'}",
            ],
            root,
            env,
            root / "munged.log",
        )
        _start(["slurmctld"], root, env, root / "slurmctld.log")
        _start(["slurmd", "-N", node], root, env, root / "slurmd.log")
        deadline = time.monotonic() + START_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            proc = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True
            )
            state = proc.stdout.strip()
            if proc.returncode == 0 and state == "idle":
                return cluster
            time.sleep(0.5)
        raise SlurmUnavailable(
            f"node {node} not idle after {START_TIMEOUT_S:.0f} s (state {state!r}); "
            f"slurmctld: {_tail(root / 'slurmctld.log')} | slurmd: {_tail(root / 'slurmd.log')}"
        )
    except BaseException:
        cluster.stop()
        raise
