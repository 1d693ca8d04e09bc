"""The ensemble cache's lease lock with real processes on simulated hosts.

What is simulated: each "host" is a process tree in its own UTS + PID (+ mount, for a private
``/proc``) namespace, made with ``unshare --uts --pid --fork --mount-proc`` and given its own host
name, so ``socket.gethostname()`` differs between hosts and each host's PIDs start at 1. Holders and
waiters on different hosts therefore have *colliding* PIDs, and a holder's PID is meaningless (dead,
or some other live process) in another host's PID namespace: exactly the situation in which "is the
holder's pid alive?" must not be asked across hosts. Killing a host's namespace init kills the whole
host at once (a crashed node), heartbeat thread included. Two namespaces may also share a host
name (containers on one node, e.g. ``docker run --network host``): same host name, separate pids.

What is not simulated: the processes share one *local* file system (``tmp_path``), not NFS (no
attribute caching, no retried ``LINK`` RPCs, no server clock), and one kernel, hence one clock
(``time.time()`` and file ``mtime`` come from the same wall clock; the lease's clock-skew handling is
not exercised here). The protocol-level NFS cases are covered by planted lease files in
``test_cache.py``.

No upper time bounds (a loaded 2-core machine may stall any process for seconds): a holder keeps
its generation going until the waiters it expects have *logged* that they found the lease held
(``LeaseLock``'s "waiting for another process" message, turned into a ``waiting-*.json`` file by
each worker), so every race is real by event order, and the tests assert orderings and lower bounds
only. The one timing assumption left is the protocol's own: a live holder's heartbeat thread runs
at least once per ``stale_after`` (10-15 heartbeats per ``stale_after`` here). The kernel stamps
``mtime`` from a coarse clock that may lag ``time.time()`` by a jiffy (<= 10 ms), covered by
``MTIME_SLACK``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from cache_helpers import ensemble_digest, stored_digest

from scalar_ml.data.cache import EnsembleCache
from scalar_ml.physics.params import Lattice, PhysicsParams

REPO = Path(__file__).resolve().parents[2]
UNSHARE = ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child"]

# the request every worker makes (the lattice and size of RACE_WORKER in test_cache.py)
P, L, N, SEED = PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8), 200, 11

MTIME_SLACK = 0.05  # s: coarse kernel timestamps vs time.time() (one jiffy is <= 10 ms)


def _namespaces_unavailable() -> str | None:
    """Why real simulated hosts cannot be made here (None: they can)."""
    if not sys.platform.startswith("linux"):
        return "simulated hosts need Linux namespaces"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is missing"
    if os.geteuid() != 0:
        return "creating UTS + PID namespaces and setting their host names needs root"
    for cmd in (
        ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "true"],
        [
            *UNSHARE,
            sys.executable,
            "-c",
            "import os, socket; socket.sethostname('probe-host');"
            "assert os.getpid() == 1 and socket.gethostname() == 'probe-host'",
        ],
    ):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"a trial `{' '.join(cmd[:7])} ...` failed: {exc}"
        if r.returncode != 0:
            return f"a trial `{' '.join(cmd[:7])} ...` failed ({r.returncode}): {r.stderr.strip()}"
    return None


_SKIP_REASON = _namespaces_unavailable()
if _SKIP_REASON is not None:
    pytest.skip(f"no simulated hosts: {_SKIP_REASON}", allow_module_level=True)


# The namespace init of one host: names the host, then either becomes its only worker (exec: the
# worker is pid 1) or starts `workers` worker processes (pids 2, 3, ... in a fresh namespace).
HOST_INIT = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys
    worker, spec = sys.argv[1], json.loads(sys.argv[2])
    socket.sethostname(spec["host"])
    if spec["workers"] == 0:
        os.execv(sys.executable, [sys.executable, worker, json.dumps({**spec, "index": 0})])
    procs = [subprocess.Popen([sys.executable, worker, json.dumps({**spec, "index": i})])
             for i in range(spec["workers"])]
    sys.exit(max(p.wait() for p in procs))
    """
)

WORKER = textwrap.dedent(
    """
    import glob, hashlib, json, logging, os, socket, sys, time, warnings
    import numpy as np
    from scalar_ml.data import cache as cache_mod
    from scalar_ml.physics.ensemble import Ensemble
    from scalar_ml.physics.params import Lattice, PhysicsParams

    spec = json.loads(sys.argv[1])
    host, pid = socket.gethostname(), os.getpid()
    assert host == spec["host"], (host, spec)
    name = f"{spec['label']}-{spec['index']}"

    def note(line):  # one short O_APPEND write per line: lines of several processes never mix
        with open(spec["counter"], "a") as f:
            f.write(line + "\\n")

    def dump(fname, obj):  # whole files only: the test polls for them
        tmp = os.path.join(spec["out"], f".{fname}.part")
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, os.path.join(spec["out"], fname))

    class WaitingLogged(logging.Handler):
        # LeaseLock logs this once per acquire, when it finds the lease held by a live holder
        def emit(self, record):
            if record.getMessage().startswith("waiting for another process holding"):
                dump(f"waiting-{name}.json", {"t": time.time()})

    cache_log = logging.getLogger("scalar_ml.data.cache")
    cache_log.setLevel(logging.INFO)
    cache_log.addHandler(WaitingLogged())

    def generate(params, lattice, n_configs, seed, **opts):
        note(f"start {host} {pid} {time.time():.6f}")
        time.sleep(spec["gen_s"])
        # event order: hold the lease until `hold_for` other workers wait for it, then for
        # `hold_after_s` more (a lower bound); after 120 s give up and let the test fail
        deadline = time.monotonic() + 120
        pattern = os.path.join(spec["out"], "waiting-*.json")
        while len(glob.glob(pattern)) < spec["hold_for"] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(spec["hold_after_s"])
        rng = np.random.default_rng(seed)  # seeded: every generation gives the same data
        configs = np.zeros((n_configs, 4, lattice.nt, lattice.nx), np.int32)
        configs[:, 0] = rng.integers(-3, 4, size=(n_configs, 1, lattice.nx))
        configs[:, 2:] = rng.integers(0, 5, size=(n_configs, 2, lattice.nt, lattice.nx))
        n = configs[:, 0].mean(axis=(1, 2))
        phi2 = rng.random(n_configs)
        note(f"end {host} {pid} {time.time():.6f}")
        return Ensemble(configs, n, phi2, phi2**2, {"generated_by": [host, pid]})

    cache = cache_mod.EnsembleCache(spec["root"], generator=generate,
                                    lock_stale_after=spec["stale_after"],
                                    lock_heartbeat=spec["heartbeat"])
    req = (PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8), 200, 11)
    lease = cache.path(*req).with_suffix(".lease")
    dump(f"ready-{name}.json", {"host": host, "pid": pid})
    while spec["go"] and not os.path.exists(spec["go"]):
        time.sleep(0.005)
    try:  # the lease as this worker first sees it, and whether its pid is alive *here*
        seen = json.loads(lease.read_text())
        seen_alive_here = cache_mod._pid_alive(seen["pid"])
    except (OSError, ValueError):
        seen, seen_alive_here = None, None
    t0 = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ens = cache.get(*req)
    t1 = time.time()
    h = hashlib.sha256()
    for a in (ens.configs, ens.n, ens.phi2, ens.phi4):
        h.update(np.ascontiguousarray(a).tobytes())
    dump(f"result-{name}.json", {
        "host": host, "pid": pid, "t0": t0, "t1": t1, "digest": h.hexdigest(),
        "checksum": ens.meta["cache"]["checksum_sha256"],
        "generated_by": ens.meta["generated_by"], "seen": seen, "seen_alive_here": seen_alive_here,
        "stale_warnings": [str(w.message) for w in caught
                           if issubclass(w.category, cache_mod.StaleLockWarning)],
        "other_warnings": [str(w.message) for w in caught
                           if not issubclass(w.category, cache_mod.StaleLockWarning)],
    })
    """
)


class Cluster:
    """Simulated hosts sharing ``tmp_path/cache``; every host is killed at teardown."""

    def __init__(self, tmp_path: Path, *, stale_after: float = 120.0, heartbeat: float = 10.0):
        self.tmp = tmp_path
        self.root = tmp_path / "cache"
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.counter = tmp_path / "generations.txt"
        self.counter.touch()
        self.go = tmp_path / "go"
        (tmp_path / "host_init.py").write_text(HOST_INIT)
        (tmp_path / "worker.py").write_text(WORKER)
        self.scripts = [str(tmp_path / "host_init.py"), str(tmp_path / "worker.py")]
        self.stale_after, self.heartbeat = stale_after, heartbeat
        self.hosts: dict[str, subprocess.Popen] = {}
        # single-threaded BLAS: its worker threads would take tids 2, 3, ... and kill(tid, 0)
        # succeeds for a thread, so host-c (worker = pid 1) would appear to have a "pid 2"
        threads = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        self.env = {**os.environ, **threads, "PYTHONPATH": str(REPO)}

    def start(
        self,
        host: str,
        *,
        workers: int,
        gen_s: float = 0.0,
        hold_for: int = 0,
        hold_after_s: float = 0.0,
        go: bool = False,
        label: str | None = None,
    ) -> None:
        """Boot ``host``: ``workers`` = 0 makes its single worker the namespace init (pid 1).

        A worker that generates sleeps ``gen_s``, then holds the lease until ``hold_for`` workers
        (of any host) have logged that they wait for it, then ``hold_after_s`` more. ``label``
        (default: the host name) names the namespace and its workers' files, so that two
        namespaces may share a host name.
        """
        label = label or host
        spec = {
            "host": host,
            "label": label,
            "workers": workers,
            "gen_s": gen_s,
            "hold_for": hold_for,
            "hold_after_s": hold_after_s,
            "root": str(self.root),
            "out": str(self.out),
            "counter": str(self.counter),
            "go": str(self.go) if go else "",
            "stale_after": self.stale_after,
            "heartbeat": self.heartbeat,
        }
        with open(self.tmp / f"{label}.log", "w") as log:  # the whole host's stdout and stderr
            self.hosts[label] = subprocess.Popen(
                [*UNSHARE, sys.executable, *self.scripts, json.dumps(spec)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def log(self, host: str) -> str:
        return (self.tmp / f"{host}.log").read_text()

    def wait_for(self, what: str, pred, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            for host, proc in self.hosts.items():
                if proc.poll() not in (None, 0):
                    raise AssertionError(
                        f"{host} failed while waiting for {what}:\n{self.log(host)}"
                    )
            time.sleep(0.01)
        logs = "\n".join(f"--- {h}\n{self.log(h)}" for h in self.hosts)
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def ready(self, name: str) -> dict:
        path = self.out / f"ready-{name}.json"
        return json.loads(self.wait_for(f"{name} ready", path.exists) and path.read_text())

    def finish(self, host: str, timeout: float = 60.0) -> None:
        rc = self.hosts[host].wait(timeout=timeout)
        assert rc == 0, f"{host} exited with {rc}:\n{self.log(host)}"

    def result(self, name: str) -> dict:
        return json.loads((self.out / f"result-{name}.json").read_text())

    def waiting(self) -> dict[str, float]:
        """Worker name -> ``time.time()`` at which it logged that it found the lease held."""
        return {
            p.name[len("waiting-") : -len(".json")]: json.loads(p.read_text())["t"]
            for p in self.out.glob("waiting-*.json")
        }

    def generations(self, kind: str = "start") -> list[tuple[str, int, float]]:
        """``(host, pid, time)`` of every generation start (or end), in order."""
        rows = [ln.split() for ln in self.counter.read_text().splitlines()]
        return [(h, int(p), float(t)) for k, h, p, t in rows if k == kind]

    def crash(self, host: str) -> float:
        """SIGKILL the host's namespace init: the kernel kills every process of the namespace."""
        proc = self.hosts[host]
        (init,) = _children(proc.pid)  # unshare --fork: its one child is pid 1 inside
        os.kill(init, signal.SIGKILL)
        t_kill = time.time()
        proc.wait(timeout=30)  # init is reaped only once all of its namespace is gone
        return t_kill

    def entry(self) -> Path:
        return EnsembleCache(self.root, generator=_never).path(P, L, N, SEED)

    def side_files(self) -> list[str]:
        """Lease, claim, tombstone, release and temporary files: none may be left over."""
        names = (p.name for p in (self.root / "ensembles").iterdir())
        return sorted(n for n in names if ".lease" in n or n.endswith(".tmp"))

    def kill_all(self) -> None:
        for proc in self.hosts.values():
            if proc.poll() is None:
                proc.kill()  # --kill-child: the namespace init gets SIGKILL too
                proc.wait(timeout=30)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _never(*args, **kwargs):
    raise AssertionError("the cache entry should have been a hit")


def _on_disk_digest_and_hit(cluster: Cluster) -> str:
    """Check the stored entry is whole and valid (a silent checksum-verified hit); its digest."""
    on_disk = stored_digest(cluster.entry())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hit = EnsembleCache(cluster.root, generator=_never).get(P, L, N, SEED)
    assert ensemble_digest(hit) == on_disk
    return on_disk


@pytest.fixture
def cluster_factory(tmp_path):
    made: list[Cluster] = []

    def make(**kwargs) -> Cluster:
        made.append(Cluster(tmp_path, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.kill_all()


# --------------------------------------------------------------------------- 1. racing hosts
def test_workers_on_two_hosts_racing_for_one_key_generate_once(cluster_factory):
    cl = cluster_factory()  # default lease times: nobody may be judged stale here
    for host in ("host-a", "host-b"):
        cl.start(host, workers=2, hold_for=3, go=True)  # the generator waits for the other 3
    names = [f"{h}-{i}" for h in ("host-a", "host-b") for i in range(2)]
    ready = {n: cl.ready(n) for n in names}
    # fresh PID namespaces: the two workers of each host have the same pids on both hosts
    assert {ready["host-a-0"]["pid"], ready["host-a-1"]["pid"]} == {
        ready["host-b-0"]["pid"],
        ready["host-b-1"]["pid"],
    }
    cl.go.touch()
    for host in ("host-a", "host-b"):
        cl.finish(host)
    results = [cl.result(n) for n in names]

    starts = cl.generations("start")
    assert len(starts) == 1, f"generated {len(starts)} times: {starts}"
    (gen_host, gen_pid, _), ((_, _, t_end),) = starts[0], cl.generations("end")
    # the race was real: the three other workers, of both hosts, found the lease held and waited
    # while the generation was still running (the generator held it until they all did)
    waiting = cl.waiting()
    generator = next(
        n
        for n, r in zip(names, results, strict=True)
        if r["pid"] == gen_pid and r["host"] == gen_host
    )
    assert sorted(waiting) == sorted(set(names) - {generator}), (waiting, generator)
    assert all(t < t_end for t in waiting.values()), (waiting, t_end)
    assert {n.rsplit("-", 1)[0] for n in waiting} == {"host-a", "host-b"}
    assert len({r["digest"] for r in results}) == 1
    assert len({r["checksum"] for r in results}) == 1
    assert all(r["generated_by"] == [gen_host, gen_pid] for r in results)
    assert all(r["stale_warnings"] == [] and r["other_warnings"] == [] for r in results), results
    assert _on_disk_digest_and_hit(cl) == results[0]["digest"]
    assert cl.side_files() == []


# --------------------------------------------------------------------------- 2. a host crashes
STALE_AFTER, HEARTBEAT = 2.0, 0.2  # s: small lease times for the crash test
#: s: lease times of the live-holder tests: 15 heartbeats per stale_after
SLOW_STALE_AFTER, SLOW_HEARTBEAT = 1.5, 0.1


def _holder_and_two_waiters(cl: Cluster, holder: str, **hold) -> dict:
    """``holder`` (pid 2 on its host) generates; then host-b (waiter pid 2) and host-c (pid 1) wait.

    host-b's waiter has the holder's very pid, so "is that pid alive?" asked on host-b says yes;
    on host-c (only pid 1 exists) it says no. Neither answer is about the holder. ``hold``: the
    holder's ``gen_s`` / ``hold_for`` / ``hold_after_s`` (:meth:`Cluster.start`).
    """
    cl.start(holder, workers=1, **hold)
    holder_ready = cl.ready(f"{holder}-0")
    cl.wait_for(f"{holder} generating", lambda: cl.generations("start"))
    lease = json.loads(cl.entry().with_suffix(".lease").read_text())
    assert (lease["host"], lease["pid"]) == (holder, holder_ready["pid"]) == (holder, 2)
    cl.start("host-b", workers=1)
    cl.start("host-c", workers=0)
    assert cl.ready("host-b-0")["pid"] == 2 and cl.ready("host-c-0")["pid"] == 1
    return lease


def _check_waiters_saw_the_holder(cl: Cluster, holder: str) -> tuple[dict, dict]:
    b, c = cl.result("host-b-0"), cl.result("host-c-0")
    for r in (b, c):
        assert (r["seen"]["host"], r["seen"]["pid"]) == (holder, 2)
    assert b["seen_alive_here"] is True  # it is host-b's waiter itself
    assert c["seen_alive_here"] is False  # no pid 2 on host-c
    return b, c


def test_crashed_host_lease_is_taken_over_only_after_its_heartbeat_is_stale(cluster_factory):
    cl = cluster_factory(stale_after=STALE_AFTER, heartbeat=HEARTBEAT)
    _holder_and_two_waiters(cl, "host-a", gen_s=600.0)  # never finishes: it is killed
    cl.wait_for("both waiters waiting", lambda: len(cl.waiting()) == 2)
    time.sleep(3 * HEARTBEAT)  # the waiters keep polling the live, heartbeating lease
    assert not cl.out.joinpath("result-host-b-0.json").exists()
    t_kill = cl.crash("host-a")
    lease_path = cl.entry().with_suffix(".lease")
    last_beat = lease_path.stat().st_mtime  # the holder is gone: this is its last heartbeat
    assert json.loads(lease_path.read_text())["host"] == "host-a"
    for host in ("host-b", "host-c"):
        cl.finish(host)
    b, c = _check_waiters_saw_the_holder(cl, "host-a")

    starts = cl.generations("start")
    assert [h for h, _, _ in starts[:1]] == ["host-a"] and len(starts) == 2, starts
    taker, taker_pid, t_take = starts[1]
    assert taker in ("host-b", "host-c")
    # not "dead pid on this host" (host-c would have taken over at once) and not "alive" (host-b
    # would have waited forever, and the hosts' finish() would time out): taken over only after
    # the crash, and only once the last heartbeat was stale_after old (orderings, no upper bound)
    assert t_take > t_kill, (t_take, t_kill)
    assert t_take - last_beat >= STALE_AFTER - MTIME_SLACK, (t_take, last_beat)
    warned = b["stale_warnings"] + c["stale_warnings"]
    assert len(warned) == 1, (b, c)
    assert "held by host-a pid 2): no heartbeat for" in warned[0], warned
    assert cl.result(f"{taker}-0")["stale_warnings"] == warned  # the taker warned, once
    assert b["other_warnings"] == c["other_warnings"] == []
    assert b["generated_by"] == c["generated_by"] == [taker, taker_pid]
    assert b["digest"] == c["digest"] == _on_disk_digest_and_hit(cl)
    assert b["checksum"] == c["checksum"]
    assert cl.side_files() == []
    assert "lost the cache lock" not in cl.log("host-b") + cl.log("host-c")


# --------------------------------------------------------------------------- 3. a slow live holder
def test_live_slow_holder_on_another_host_is_never_taken_over(cluster_factory):
    cl = cluster_factory(stale_after=SLOW_STALE_AFTER, heartbeat=SLOW_HEARTBEAT)
    # held for 2.5 stale_after periods after both waiters found it held: only the heartbeat keeps
    # the lease from going stale
    hold_after_s = 2.5 * SLOW_STALE_AFTER
    _holder_and_two_waiters(cl, "host-a", hold_for=2, hold_after_s=hold_after_s)
    for host in ("host-a", "host-b", "host-c"):
        cl.finish(host)
    b, c = _check_waiters_saw_the_holder(cl, "host-a")
    a = cl.result("host-a-0")
    starts = cl.generations("start")
    assert [(h, p) for h, p, _ in starts] == [("host-a", 2)], starts
    ((_, _, t_end),) = cl.generations("end")
    for r in (a, b, c):
        assert r["stale_warnings"] == [] and r["other_warnings"] == [], r
        assert r["generated_by"] == ["host-a", 2]
    # the waiters really waited for the whole generation, longer than two stale_after periods
    waiting = cl.waiting()
    assert sorted(waiting) == ["host-b-0", "host-c-0"], waiting
    assert all(t_end - t >= hold_after_s for t in waiting.values()), (waiting, t_end)
    assert min(b["t1"], c["t1"]) >= t_end
    assert a["digest"] == b["digest"] == c["digest"] == _on_disk_digest_and_hit(cl)
    for host in ("host-a", "host-b", "host-c"):
        assert "lost the cache lock" not in cl.log(host)
        assert "took over" not in cl.log(host)
    assert cl.side_files() == []


# --------------------------------------------------------------------------- 4. containers
def test_holder_in_another_pid_namespace_with_the_same_host_name_is_not_judged_dead(
    cluster_factory,
):
    # Two containers on one node that share its host name (e.g. ``docker run --network host``)
    # but not its PID namespace: the holder's pid is absent from the waiter's namespace although
    # the holder is alive. Host-name equality must not be mistaken for a shared pid space.
    cl = cluster_factory(stale_after=SLOW_STALE_AFTER, heartbeat=SLOW_HEARTBEAT)
    # holder: pid 2 in its namespace; it holds the lease until the waiter found it held, then for
    # 1.5 stale_after periods (a "dead pid" verdict would have come at the waiter's first look)
    hold = {"hold_for": 1, "hold_after_s": 1.5 * SLOW_STALE_AFTER}
    cl.start("node-1", workers=1, label="ctr-1", **hold)
    assert cl.ready("ctr-1-0")["pid"] == 2
    cl.wait_for("ctr-1 generating", lambda: cl.generations("start"))
    cl.start("node-1", workers=0, label="ctr-2")  # waiter: pid 1, no pid 2 here
    for label in ("ctr-1", "ctr-2"):
        cl.finish(label)
    waiter = cl.result("ctr-2-0")
    assert (waiter["seen"]["host"], waiter["seen"]["pid"], waiter["seen_alive_here"]) == (
        "node-1",
        2,
        False,
    )
    assert [(h, p) for h, p, _ in cl.generations("start")] == [("node-1", 2)]
    assert waiter["stale_warnings"] == [] and waiter["generated_by"] == ["node-1", 2]
    assert waiter["digest"] == cl.result("ctr-1-0")["digest"] == _on_disk_digest_and_hit(cl)
    assert cl.side_files() == []
