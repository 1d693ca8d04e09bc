"""Ensemble cache: keys, hits, atomic writes, corruption, and processes racing for one entry.

Most tests inject a cheap deterministic generator (valid closed configurations: temporal windings
plus random l), so they count and break generations without running the worm sampler; one test goes
through the real ``generate_ensemble`` end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from cache_helpers import ensemble_digest, stored_digest

from scalar_ml.data import cache as cache_mod
from scalar_ml.data.cache import (
    CacheCorruptionWarning,
    EnsembleCache,
    EnsembleRequest,
    load_ensemble,
)
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.params import Lattice, PhysicsParams

P = PhysicsParams(4.01, 1.0, 1.0)
L = Lattice(4, 6)
REPO = Path(__file__).resolve().parents[2]


def fake_generate(
    params,
    lattice,
    n_configs,
    seed,
    *,
    n_chains=8,
    n_therm=None,
    sweeps_between=None,
    progress=False,
) -> Ensemble:
    """Deterministic closed configurations: per-column temporal windings and random l >= 0."""
    key = [seed, n_chains, n_therm or 0, sweeps_between or 0, lattice.nt, lattice.nx]
    rng = np.random.default_rng([*key, int(1e6 * params.eta), int(1e6 * params.mu)])
    nt, nx = lattice.nt, lattice.nx
    configs = np.zeros((n_configs, 4, nt, nx), dtype=np.int64)
    configs[:, 0] = rng.integers(-2, 3, size=(n_configs, 1, nx))
    configs[:, 2:] = rng.integers(0, 4, size=(n_configs, 2, nt, nx))
    n = configs[:, 0].mean(axis=(1, 2))
    phi2 = params.eta / 10 + rng.random(n_configs)
    return Ensemble(
        configs=configs,
        n=n,
        phi2=phi2,
        phi4=phi2**2,
        meta={"tau_int": {"n": np.float64(1.5)}, "acceptance": {"worm": 0.5}, "progress": progress},
    )


class Counting:
    """Wraps a generator and records its calls."""

    def __init__(self, fn=fake_generate):
        self.fn = fn
        self.calls: list[dict] = []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self.fn(*args, **kwargs)


def _entries(root: Path) -> list[str]:
    d = root / "ensembles"
    return sorted(p.name for p in d.iterdir() if not p.name.endswith(".lock")) if d.exists() else []


# --------------------------------------------------------------------------- keys and validation
def test_key_changes_with_every_data_parameter_and_not_with_progress(monkeypatch):
    base = dict(params=P, lattice=L, n_configs=100, seed=1)
    ref = EnsembleRequest.create(**base)
    variants = {
        "eta": dict(base, params=PhysicsParams(4.02, 1.0, 1.0)),
        "lam": dict(base, params=PhysicsParams(4.01, 0.5, 1.0)),
        "mu": dict(base, params=PhysicsParams(4.01, 1.0, 1.0 + 1e-12)),
        "nt": dict(base, lattice=Lattice(6, 6)),
        "nx": dict(base, lattice=Lattice(4, 4)),
        "n_configs": dict(base, n_configs=101),
        "seed": dict(base, seed=2),
        "n_chains": dict(base, n_chains=4),
        "n_therm": dict(base, n_therm=100),
        "sweeps_between": dict(base, sweeps_between=3),
        "algorithm": dict(base, algorithm="worm-2"),
    }
    keys = {name: EnsembleRequest.create(**kw).key() for name, kw in variants.items()}
    assert ref.key() not in keys.values()
    assert len(set(keys.values())) == len(keys)
    # defaults filled in, progress ignored, int/float and -0.0/0.0 folded
    assert EnsembleRequest.create(**base, progress=True).key() == ref.key()
    assert EnsembleRequest.create(**base, n_chains=8, n_therm=None).key() == ref.key()
    zero = EnsembleRequest.create(PhysicsParams(4.01, 1, 0.0), L, 100, 1).key()
    assert EnsembleRequest.create(PhysicsParams(4.01, 1.0, -0.0), L, 100, 1).key() == zero
    ref_key = ref.key()
    monkeypatch.setattr(cache_mod, "FORMAT_VERSION", cache_mod.FORMAT_VERSION + 1)
    assert EnsembleRequest.create(**base).key() != ref_key
    name = ref.filename()
    assert name.startswith("eta4.01_lam1_mu1_4x6_n100_s1-") and name.endswith(".npz")


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((PhysicsParams(0.0, 1.0, 1.0), L, 10, 0), {}, "eta must be > 0"),
        ((PhysicsParams(4.01, -1.0, 1.0), L, 10, 0), {}, "lam must be >= 0"),
        ((PhysicsParams(4.01, 0.0, 1.0), L, 10, 0), {}, "free theory"),
        ((P, Lattice(1, 8), 10, 0), {}, "lattice.nt must be >= 2"),
        ((P, L, 0, 0), {}, "n_configs must be an integer >= 1"),
        ((P, L, 2.5, 0), {}, "n_configs must be an integer"),
        ((P, L, 10, -1), {}, "seed must be an integer >= 0"),
        ((P, L, 10, 0), {"n_chains": 0}, "n_chains"),
        ((P, L, 10, 0), {"n_therm": -5}, "n_therm"),
        ((P, L, 10, 0), {"sweeps_between": 0}, "sweeps_between"),
        ((P, L, 10, 0), {"progress": "yes"}, "progress"),
        ((P, L, 10, 0), {"n_chain": 4}, "unknown sampler option"),
        (((4.01, 1.0, 1.0), L, 10, 0), {}, "PhysicsParams"),
    ],
)
def test_bad_input_raises_before_touching_disk(tmp_path, args, kwargs, match):
    gen = Counting()
    root = tmp_path / "cache"  # does not exist: must not be created
    with pytest.raises((ValueError, TypeError), match=match):
        EnsembleCache(root, generator=gen).get(*args, **kwargs)
    assert not root.exists()
    assert gen.calls == []


# --------------------------------------------------------------------------- hits and format
def test_hit_returns_identical_read_only_arrays_without_regenerating(data_dir):
    gen = Counting()
    first = EnsembleCache(data_dir, generator=gen).get(P, L, 50, 3, progress=True)
    assert len(gen.calls) == 1
    assert gen.calls[0] == {
        "n_chains": 8,
        "n_therm": None,
        "sweeps_between": None,
        "progress": True,
    }
    again = EnsembleCache(data_dir, generator=gen).get(P, L, 50, 3, progress=False)
    assert len(gen.calls) == 1
    for name in ("configs", "n", "phi2", "phi4"):
        a, b = getattr(first, name), getattr(again, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
        assert not b.flags.writeable
        with pytest.raises(ValueError):
            b[0] = 0
    assert first.configs.dtype == np.int32 and first.configs.shape == (50, 4, 4, 6)
    assert first.meta == again.meta
    assert again.meta["tau_int"] == {"n": 1.5}
    assert again.meta["cache"]["format_version"] == cache_mod.FORMAT_VERSION
    # a different request is a miss
    EnsembleCache(data_dir, generator=gen).get(P, L, 50, 4)
    assert len(gen.calls) == 2


def test_stored_file_loads_without_pickle_and_has_metadata(data_dir):
    cache = EnsembleCache(data_dir, generator=fake_generate)
    ens = cache.get(P, L, 20, 0, n_chains=2)
    path = cache.path(P, L, 20, 0, n_chains=2)
    assert path.parent == data_dir / "ensembles"
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"configs", "n", "phi2", "phi4", "meta", "checksum"}
        assert np.array_equal(z["configs"], ens.configs)
        meta = json.loads(str(z["meta"][()]))
    assert meta["params"] == {"eta": 4.01, "lam": 1.0, "mu": 1.0}
    assert meta["seed"] == 0 and meta["sampler_options"]["n_chains"] == 2
    for field in ("package_version", "created", "generation_s", "key"):
        assert field in meta["cache"]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["checksum_sha256"] == ens.meta["cache"]["checksum_sha256"]
    assert sidecar["acceptance"] == {"worm": 0.5}


def test_load_ensemble_uses_env_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALAR_ML_DATA_DIR", str(tmp_path / "envdata"))
    gen = Counting()
    monkeypatch.setattr(cache_mod, "_default_generator", lambda: (gen, None))
    a = load_ensemble(P, L, 10, 5)
    b = load_ensemble(P, L, 10, 5)
    assert len(gen.calls) == 1 and np.array_equal(a.configs, b.configs)
    assert len(list((tmp_path / "envdata" / "ensembles").glob("*.npz"))) == 1
    load_ensemble(P, L, 10, 5, cache_dir=tmp_path / "explicit")
    assert len(list((tmp_path / "explicit" / "ensembles").glob("*.npz"))) == 1


def test_invalid_generator_output_is_refused_and_not_stored(data_dir):
    def broken(*args, **kwargs):
        ens = fake_generate(*args, **kwargs)
        ens.configs[3, 1, 0, 0] += 1  # k_x on one link: div k != 0 at two sites
        return ens

    with pytest.raises(RuntimeError, match="div k = 0"):
        EnsembleCache(data_dir, generator=broken).get(P, L, 10, 0)

    def short(*args, **kwargs):
        ens = fake_generate(*args, **kwargs)
        return Ensemble(ens.configs[:-1], ens.n[:-1], ens.phi2[:-1], ens.phi4[:-1], ens.meta)

    with pytest.raises(RuntimeError, match="shape"):
        EnsembleCache(data_dir, generator=short).get(P, L, 10, 0)
    assert _entries(data_dir) == []


# --------------------------------------------------------------------------- corruption
def _flip_middle(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 8):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _valid_zip_wrong_data(path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["phi2"] = arrays["phi2"] + 1e-9  # a silent change the zip CRC cannot see
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _other_request(path: Path) -> None:
    cache = EnsembleCache(path.parent.parent, generator=fake_generate)
    cache.get(P, L, 30, 99)
    os.replace(cache.path(P, L, 30, 99), path)


@pytest.mark.parametrize("damage", [_flip_middle, _truncate, _valid_zip_wrong_data, _other_request])
def test_damaged_entry_is_warned_about_regenerated_and_never_served(data_dir, damage):
    gen = Counting()
    cache = EnsembleCache(data_dir, generator=gen)
    good = cache.get(P, L, 30, 7)
    path = cache.path(P, L, 30, 7)
    damage(path)
    with pytest.warns(CacheCorruptionWarning, match="regenerating"):
        again = cache.get(P, L, 30, 7)
    assert len(gen.calls) == 2
    assert ensemble_digest(again) == ensemble_digest(good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = cache.get(P, L, 30, 7)  # the regenerated file is valid again: silent hit
    assert len(gen.calls) == 2 and ensemble_digest(third) == ensemble_digest(good)


# --------------------------------------------------------------------------- failed writes
def test_failed_generation_or_write_leaves_no_partial_file_and_keeps_valid_entries(
    data_dir, monkeypatch
):
    cache = EnsembleCache(data_dir, generator=fake_generate)
    cache.get(P, L, 20, 1)
    kept = cache.path(P, L, 20, 1)
    kept_bytes = kept.read_bytes()
    before = _entries(data_dir)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        EnsembleCache(data_dir, generator=interrupted).get(P, L, 20, 2)
    assert _entries(data_dir) == before

    real_savez = np.savez_compressed

    def dies_mid_write(f, **arrays):
        real_savez(f, **arrays)
        f.truncate(100)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(cache_mod.np, "savez_compressed", dies_mid_write)
    with pytest.raises(OSError, match="simulated"):
        cache.get(P, L, 20, 2)
    # rewriting an existing key fails the same way: the damaged entry is replaced only whole
    _truncate(kept)
    with pytest.raises(OSError, match="simulated"), pytest.warns(CacheCorruptionWarning):
        cache.get(P, L, 20, 1)
    monkeypatch.undo()
    assert _entries(data_dir) == before  # no temporaries, no partial entry
    kept.write_bytes(kept_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.get(P, L, 20, 1)


def test_leftover_temporary_of_a_killed_writer_is_removed(data_dir):
    cache = EnsembleCache(data_dir, generator=fake_generate)
    path = cache.path(P, L, 5, 0)
    path.parent.mkdir(parents=True)
    stale = path.parent / f".{path.name}.abc123.tmp"
    stale.write_bytes(b"half an archive")
    cache.get(P, L, 5, 0)
    assert not stale.exists()
    assert _entries(data_dir) == sorted([path.name, path.with_suffix(".json").name])


# --------------------------------------------------------------------------- racing processes
RACE_WORKER = textwrap.dedent(
    """
    import hashlib, json, logging, os, sys, time
    import numpy as np
    from scalar_ml.data.cache import EnsembleCache
    from scalar_ml.physics.ensemble import Ensemble
    from scalar_ml.physics.params import Lattice, PhysicsParams

    root, counter, go, waiters = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    waiting = counter + ".waiting"  # one file per process that found the lock held

    class WaitingLogged(logging.Handler):
        # LeaseLock logs this once, when an attempt finds the lease held by a live holder
        def emit(self, record):
            if record.getMessage().startswith("waiting for another process holding"):
                open(os.path.join(waiting, str(os.getpid())), "w").close()

    cache_log = logging.getLogger("scalar_ml.data.cache")
    cache_log.setLevel(logging.INFO)
    cache_log.addHandler(WaitingLogged())

    def generate(params, lattice, n_configs, seed, **opts):
        with open(counter, "a") as f:  # one line per generation, from whichever process
            f.write(f"{os.getpid()}\\n")
        # event order, not timing: hold the lock until every other process waits for it (the
        # race is then real whatever the load); after 120 s give up, and the test fails
        deadline = time.monotonic() + 120
        while len(os.listdir(waiting)) < waiters and time.monotonic() < deadline:
            time.sleep(0.01)
        rng = np.random.default_rng(seed)
        configs = np.zeros((n_configs, 4, lattice.nt, lattice.nx), np.int32)
        configs[:, 0] = rng.integers(-3, 4, size=(n_configs, 1, lattice.nx))
        configs[:, 2:] = rng.integers(0, 5, size=(n_configs, 2, lattice.nt, lattice.nx))
        n = configs[:, 0].mean(axis=(1, 2))
        phi2 = rng.random(n_configs)
        ens = Ensemble(configs, n, phi2, phi2**2, {"generated_by": os.getpid()})
        with open(counter, "a") as f:
            f.write(f"end {len(os.listdir(waiting))}\\n")
        return ens

    while not os.path.exists(go):
        time.sleep(0.005)
    ens = EnsembleCache(root, generator=generate).get(
        PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8), 200, 11)
    h = hashlib.sha256()
    for a in (ens.configs, ens.n, ens.phi2, ens.phi4):
        h.update(np.ascontiguousarray(a).tobytes())
    print(json.dumps({"pid": os.getpid(), "digest": h.hexdigest(),
                      "checksum": ens.meta["cache"]["checksum_sha256"],
                      "generated_by": ens.meta["generated_by"]}))
    """
)
RACERS = 4


def _start_racers(tmp_path: Path) -> tuple[list[subprocess.Popen], Path, Path]:
    """RACERS worker processes, released together by a go file; (processes, root, counter)."""
    script = tmp_path / "worker.py"
    script.write_text(RACE_WORKER)
    root, counter, go = tmp_path / "cache", tmp_path / "generations.txt", tmp_path / "go"
    Path(f"{counter}.waiting").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(root), str(counter), str(go), str(RACERS - 1)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(RACERS)
    ]
    go.touch()  # the workers may start late: the generator waits for the waiters (event order)
    return procs, root, counter


def _check_the_race_was_real(counter: Path, generator_pid: int) -> None:
    """Every other worker found the lock held while the one generation ran (logged "waiting")."""
    waited = sorted(int(p.name) for p in Path(f"{counter}.waiting").iterdir())
    assert len(waited) == RACERS - 1 and generator_pid not in waited, (waited, generator_pid)
    end = [ln for ln in counter.read_text().splitlines() if ln.startswith("end")]
    assert end == [f"end {RACERS - 1}"], end  # all of them were waiting before it ended


def test_racing_processes_generate_once_and_read_identical_data(tmp_path):
    procs, root, counter = _start_racers(tmp_path)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    lines = counter.read_text().splitlines()
    starts = [ln for ln in lines if not ln.startswith("end")]
    assert len(starts) == 1, f"generated {len(starts)} times: {lines}"
    _check_the_race_was_real(counter, int(starts[0]))
    assert len({r["digest"] for r in results}) == 1
    assert len({r["checksum"] for r in results}) == 1
    assert {r["generated_by"] for r in results} == {int(starts[0])}
    # and what they read is what is on disk
    (npz,) = (root / "ensembles").glob("*.npz")
    assert stored_digest(npz) == results[0]["digest"]


# --------------------------------------------------------------------------- the real sampler
def test_real_sampler_through_the_cache_is_transparent_and_valid(data_dir):
    from scalar_ml.physics.ensemble import generate_ensemble
    from scalar_ml.physics.observables import flux_divergence

    params, lattice = PhysicsParams(4.01, 1.0, 1.2), Lattice(4, 4)
    ens = load_ensemble(params, lattice, 60, 4, cache_dir=data_dir, n_chains=2, progress=False)
    direct = generate_ensemble(params, lattice, 60, 4, n_chains=2)
    for name in ("configs", "n", "phi2", "phi4"):
        assert np.array_equal(getattr(ens, name), getattr(direct, name))  # bit-identical
    assert ens.configs.shape == (60, 4, 4, 4) and ens.configs.dtype == np.int32
    assert not np.any(flux_divergence(ens.configs)) and ens.configs[:, 2:].min() >= 0
    assert ens.meta["chain_lengths"] == [30, 30] and ens.meta["tau_int"]["unit"] == "sweeps"
    assert set(ens.meta["acceptance"]) and ens.meta["cache"]["key"] in ens.meta["cache"]["file"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("cache miss")

    from scalar_ml.physics.ensemble import SAMPLER_VERSION

    # an injected generator must name the algorithm to share the real sampler's entries
    tag = f"worm-{SAMPLER_VERSION}"
    cache = EnsembleCache(data_dir, generator=must_not_run, algorithm=tag)
    hit = cache.get(params, lattice, 60, 4, n_chains=2)
    assert ensemble_digest(hit) == ensemble_digest(ens) and hit.meta == ens.meta


# --------------------------------------------------------------------------- cross-host leases
OTHER_HOST = "node-elsewhere.cluster"


def _lease_path(cache: EnsembleCache, *args) -> Path:
    return cache.path(*args).with_suffix(".lease")


def _plant_lease(lease: Path, *, host: str, pid: int, age: float = 0.0, token: str = "t0") -> None:
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_text(json.dumps({"host": host, "pid": pid, "token": token, "created": "x"}))
    if age:
        t = time.time() - age
        os.utime(lease, (t, t))


def _side_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "ensembles").iterdir() if ".lease" in p.name)


def test_lease_of_a_killed_holder_on_this_host_is_taken_over(data_dir):
    gen = Counting()
    cache = EnsembleCache(data_dir, generator=gen)
    lease = _lease_path(cache, P, L, 12, 0)
    lease.parent.mkdir(parents=True)
    holder = "import os, sys; from scalar_ml.data.cache import LeaseLock\n"
    holder += "LeaseLock(sys.argv[1]).acquire(); os.kill(os.getpid(), 9)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", holder, str(lease)], env=env, timeout=60)
    assert proc.returncode == -9
    info = json.loads(lease.read_text())  # fresh mtime, but its pid is dead
    assert info["host"] == cache_mod.socket.gethostname()
    with pytest.warns(cache_mod.StaleLockWarning, match=f"pid {info['pid']} on this host"):
        ens = cache.get(P, L, 12, 0)
    assert len(gen.calls) == 1 and ens.configs.shape[0] == 12
    assert _side_files(data_dir) == []  # lease released, tombstone and claims removed


def test_stale_lease_from_another_host_is_taken_over(data_dir):
    gen = Counting()
    cache = EnsembleCache(data_dir, generator=gen, lock_timeout=5)
    _plant_lease(_lease_path(cache, P, L, 12, 1), host=OTHER_HOST, pid=1, age=1000)
    with pytest.warns(cache_mod.StaleLockWarning, match=f"{OTHER_HOST}.*no heartbeat"):
        cache.get(P, L, 12, 1)
    assert len(gen.calls) == 1 and _side_files(data_dir) == []


def test_fresh_lease_from_another_host_is_respected_until_the_timeout(data_dir):
    gen = Counting()
    cache = EnsembleCache(data_dir, generator=gen, lock_timeout=0.5)
    lease = _lease_path(cache, P, L, 12, 2)
    _plant_lease(lease, host=OTHER_HOST, pid=os.getpid() + 10**6, token="theirs")
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(cache_mod.CacheLockTimeout, match=f"0.5 s .*held by {OTHER_HOST}"):
            cache.get(P, L, 12, 2)
    assert time.monotonic() - t0 >= 0.5  # respected until the timeout (no upper bound: load)
    assert gen.calls == [] and json.loads(lease.read_text())["token"] == "theirs"
    assert isinstance(cache_mod.CacheLockTimeout("x"), TimeoutError)


def test_lease_that_never_changes_is_stale_after_stale_after_of_local_time(data_dir):
    # clock skew: the lease's mtime is in "the future", so only the clock-free rule can judge it
    gen = Counting()
    cache = EnsembleCache(data_dir, generator=gen, lock_stale_after=0.6, lock_heartbeat=0.1)
    _plant_lease(_lease_path(cache, P, L, 12, 3), host=OTHER_HOST, pid=1, age=-3600)
    t0 = time.monotonic()
    with pytest.warns(cache_mod.StaleLockWarning, match="unchanged for"):
        cache.get(P, L, 12, 3)
    assert time.monotonic() - t0 > 0.6 and len(gen.calls) == 1  # not before stale_after


def test_heartbeat_keeps_a_slow_holder_lease_alive(tmp_path):
    lease = tmp_path / "k.lease"
    # 30 heartbeats per stale_after: only a stall of the whole process for > 1.45 s could let the
    # waiter judge the live lease stale (the protocol's one timing assumption, far from the test's)
    holder = cache_mod.LeaseLock(lease, stale_after=1.5, heartbeat=0.05)
    holder.acquire()
    info = json.loads(lease.read_text())
    assert info["host"] == cache_mod.socket.gethostname() and info["pid"] == os.getpid()
    # pretend it is another host's holder so that only its heartbeat can keep it alive
    waiter = cache_mod.LeaseLock(lease, stale_after=1.5, heartbeat=0.05)
    waiter.host = OTHER_HOST
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(cache_mod.CacheLockTimeout):
            waiter.acquire(timeout=3.2)  # two stale_after periods: the heartbeat kept it fresh
    assert not holder.lost
    holder.release()
    assert not lease.exists()
    waiter.acquire(timeout=1)
    waiter.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_release_never_deletes_someone_elses_lease(tmp_path):
    lease = tmp_path / "k.lease"
    lock = cache_mod.LeaseLock(lease, stale_after=1.0, heartbeat=0.05)
    lock.acquire()
    # another process took the lease over (as if ours had gone stale)
    other = tmp_path / "other"
    other.write_text(json.dumps({"host": OTHER_HOST, "pid": 1, "token": "theirs"}))
    os.replace(other, lease)
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while not lock.lost and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lock.lost  # the heartbeat noticed and stopped touching the lease
    lock.release()
    assert json.loads(lease.read_text())["token"] == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.lease"]
    with pytest.raises(ValueError, match="stale_after > 2 \\* heartbeat"):
        cache_mod.LeaseLock(lease, stale_after=1.0, heartbeat=0.5)


def test_racing_processes_take_over_one_stale_lease_once_and_generate_once(tmp_path):
    path = EnsembleCache(tmp_path / "cache", generator=fake_generate).path(
        P, Lattice(8, 8), 200, 11
    )
    _plant_lease(path.with_suffix(".lease"), host=OTHER_HOST, pid=1, age=1000)
    procs, root, counter = _start_racers(tmp_path)
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    took_over = [err for _, err in outs if "took over the abandoned cache lock" in err]
    assert len(took_over) == 1, [err for _, err in outs]
    starts = [ln for ln in counter.read_text().splitlines() if not ln.startswith("end")]
    assert len(starts) == 1
    _check_the_race_was_real(counter, int(starts[0]))
    assert len({json.loads(out.strip().splitlines()[-1])["digest"] for out, _ in outs}) == 1
    assert _side_files(root) == []
