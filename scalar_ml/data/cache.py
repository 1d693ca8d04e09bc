"""On-disk cache of worm-sampler ensembles: keyed, atomic, locked and checksummed.

One request ``(params, lattice, n_configs, seed, sampler options)`` maps to one file::

    <root>/ensembles/eta4.01_lam1_mu1_8x8_n2000_s1-<hash12>.npz   (the data, authoritative)
    <root>/ensembles/eta4.01_lam1_mu1_8x8_n2000_s1-<hash12>.json  (a readable copy of the metadata)
    <root>/ensembles/eta4.01_lam1_mu1_8x8_n2000_s1-<hash12>.lease (lock, only while generating)

Conventions:

- **Key.** The readable name is for humans; the 12-hex-digit hash is the identity. It is the SHA-256 of
  a canonical JSON of everything that changes the data: ``FORMAT_VERSION``, the sampler algorithm
  version (when the generator declares one), the theory's parameters (:mod:`scalar_ml.physics.theory`:
  ``eta, lam, mu``, full float precision, ``-0.0`` folded to ``0.0``), the lattice (``nt, nx`` in 2D,
  ``shape`` in d = 3, 4 dimensions, e.g. ``eta6.01_lam1_mu0_8x8x8_...``), ``n_configs``,
  ``seed`` and the data-changing sampler options ``n_chains``, ``n_therm``, ``sweeps_between``
  (defaults filled in, so omitting an option and passing its default give the same key).
  ``progress`` does not change the data and is not part of the key.
- **File.** A ``np.savez_compressed`` archive holding ``configs`` ((N, 4, Nt, Nx) int32, channels
  ``[k_t, k_x, l_t, l_x]``; ``(N, 2d, *shape)`` in d dimensions), the theory's per-configuration observables ``n``, ``phi2``, ``phi4``
  ((N,) float64), ``meta`` (a 0-d unicode array with the metadata as JSON) and ``checksum`` (SHA-256
  over the arrays' dtype, shape and bytes and the metadata JSON). Everything loads with
  ``np.load(path, allow_pickle=False)``. Checks on load and store (closed configurations: div k = 0,
  l >= 0) are the theory's.
- **Writes are atomic**: a temporary file in the same directory, ``fsync``, then ``os.replace``. A
  failure at any point removes the temporary file and leaves any existing entry untouched.
- **Concurrency**: a :class:`LeaseLock` per key, which works across processes on *different hosts*
  sharing the directory (NFS and other cluster file systems, where ``flock``/``fcntl`` are unreliable).
  A miss takes the lease, looks again, generates, writes and releases, so processes racing for one
  ensemble generate it once and all read the same bytes. Readers of a valid entry never wait for a lock
  (files only ever appear whole, via ``os.replace``). The lease protocol:

  - *Take*: write ``{host, pid, pid_ns, token, created}`` (JSON, ``token`` random) to a private file
    ``.<key>.lease.<token>.claim`` and ``os.link`` it to ``<key>.lease``. ``link`` is atomic and fails
    if the lease exists (on NFSv3+ too; a retried NFS ``LINK`` that reports an error is checked by the
    claim's link count), so exactly one process holds the lease and its content is complete the
    moment it appears. File systems without hard links fall back to ``O_CREAT | O_EXCL``.
  - *Heartbeat*: the holder touches the lease's ``mtime`` every ``heartbeat`` s (10) from a daemon
    thread while it generates.
  - *Stale*: a waiter polls and judges the lease abandoned when its holder is a dead pid on the waiter's
    own host and in its own PID namespace (``pid_ns``: containers sharing a host name do not share
    pids), or its ``mtime`` is more than ``stale_after`` s (120) old, or it has not changed at all
    for ``stale_after`` s of the waiter's own monotonic clock. Then it renames the lease to a private
    tombstone (``os.rename`` of one file succeeds for one taker only), checks that it moved the file it
    judged (else puts it back), deletes it with a :class:`StaleLockWarning` and tries to take it again.
  - *Release* renames the lease aside, deletes it if the token is still ours and puts it back if not:
    a process never deletes someone else's lease.
  - *Clocks*: ages are measured on the file server's clock: ``os.utime(path)`` with no times makes an
    NFS server set ``mtime`` itself, and the waiter reads "now" from the ``mtime`` of its freshly
    touched claim file, so clock skew between hosts does not matter. The assumption is only that the
    server stamps both files alike; the monotonic "unchanged for ``stale_after`` s" rule needs no
    clock at all. A holder paused for longer than ``stale_after`` (e.g. a suspended job) can lose its
    lease; its heartbeat notices, logs an error, and the worst outcome is a second, identical
    generation: correctness never depends on the lock (atomic writes and checksums guarantee whole,
    valid entries), the lock only avoids duplicate work. ``lock_timeout`` bounds the wait
    (:class:`CacheLockTimeout`). A process killed mid-``acquire`` may leave a small
    ``.<key>.lease.*.claim`` file behind; it is harmless.
- **Integrity**: every load recomputes the checksum and checks the key and shapes. A truncated or
  corrupted entry is never served: it is reported with a :class:`CacheCorruptionWarning` and regenerated.
- Returned arrays are read-only views of what is on disk (a cache hit and the generating call return
  bit-identical arrays).

>>> from scalar_ml.physics import Lattice, PhysicsParams
>>> req = EnsembleRequest.create(PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8), 2000, seed=1)
>>> req.filename().startswith("eta4.01_lam1_mu1_8x8_n2000_s1-")
True
>>> req == EnsembleRequest.create(PhysicsParams(4.01, 1, 1), Lattice(8, 8), 2000, 1, n_chains=8)
True
>>> EnsembleRequest.create(PhysicsParams(4.01, 1.0, 1.0), Lattice(8, 8), 0, seed=1)
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: n_configs must be an integer >= 1, got 0
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalar_ml.config import integer
from scalar_ml.physics.ensemble import Ensemble
from scalar_ml.physics.params import Lattice, PhysicsParams
from scalar_ml.physics.theory import get_theory

__all__ = [
    "DATA_OPTION_DEFAULTS",
    "FORMAT_VERSION",
    "CacheCorruptionWarning",
    "CacheLockTimeout",
    "EnsembleCache",
    "EnsembleRequest",
    "LeaseLock",
    "StaleLockWarning",
    "atomic_write",
    "load_ensemble",
]

log = logging.getLogger(__name__)

#: Bump when the file layout or the meaning of a key changes: old entries are then simply not found.
FORMAT_VERSION: int = 1

_THEORY = get_theory()
#: Sampler options that change the generated data, with the sampler's defaults (the theory's).
DATA_OPTION_DEFAULTS: dict[str, Any] = dict(_THEORY.data_options)
#: Arrays of an entry: the configurations and the theory's per-configuration observables.
_ARRAYS: tuple[str, ...] = ("configs", *_THEORY.observable_names)
_MAX_SEED = 2**63

Generator = Callable[..., Ensemble]


class CacheCorruptionWarning(RuntimeWarning):
    """A cache entry failed its integrity check and is being regenerated."""


class _CorruptEntry(Exception):
    """Internal: the file at a key's path cannot be served."""


@dataclass(frozen=True)
class EnsembleRequest:
    """A validated, normalised ensemble request; its :meth:`key` identifies the data exactly."""

    params: PhysicsParams
    lattice: Lattice
    n_configs: int
    seed: int
    n_chains: int
    n_therm: int | None
    sweeps_between: int | None
    algorithm: str | None = None

    @classmethod
    def create(
        cls,
        params: PhysicsParams,
        lattice: Lattice,
        n_configs: int,
        seed: int,
        *,
        algorithm: str | None = None,
        **sampler_options: Any,
    ) -> EnsembleRequest:
        """Validate every input (``ValueError``/``TypeError``, nothing touched on disk) and normalise.

        ``sampler_options`` may hold ``n_chains``, ``n_therm``, ``sweeps_between`` and ``progress``;
        ``progress`` is accepted and ignored here (it does not change the data).
        """
        _THEORY.validate(params, lattice, error=TypeError)
        unknown = (
            set(sampler_options) - set(DATA_OPTION_DEFAULTS) - dict(_THEORY.run_options).keys()
        )
        if unknown:
            allowed = sorted({*DATA_OPTION_DEFAULTS, *dict(_THEORY.run_options)})
            raise TypeError(
                f"unknown sampler option(s) {sorted(unknown)}; allowed: {', '.join(allowed)}"
            )
        opts = _THEORY.sampler_options(sampler_options)
        n_configs_ = integer("n_configs", n_configs, minimum=1)
        seed_ = integer("seed", seed, minimum=0)
        if seed_ >= _MAX_SEED:
            raise ValueError(f"seed must be < 2**63, got {seed_}")
        assert isinstance(params, PhysicsParams)
        return cls(
            # float(x) + 0.0 folds -0.0 into 0.0 and ints into floats
            params=PhysicsParams(**{k: float(v) + 0.0 for k, v in _THEORY.values(params).items()}),
            lattice=Lattice(*(int(n) for n in lattice.shape)),
            n_configs=n_configs_,
            seed=seed_,
            n_chains=opts["n_chains"],
            n_therm=opts["n_therm"],
            sweeps_between=opts["sweeps_between"],
            algorithm=algorithm,
        )

    def key_payload(self) -> dict[str, Any]:
        """Everything that determines the data, as plain JSON values."""
        payload: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            **_THEORY.values(self.params),
            **_lattice_key(self.lattice),
            "n_configs": self.n_configs,
            "seed": self.seed,
            **self.sampler_options(),
        }
        if self.algorithm is not None:
            payload["algorithm"] = self.algorithm
        return payload

    def key(self) -> str:
        """12 hex digits of SHA-256 over the canonical JSON of :meth:`key_payload`."""
        blob = json.dumps(self.key_payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def filename(self) -> str:
        """Readable stem plus key, e.g. ``eta4.01_lam1_mu1_8x8_n2000_s1-0123456789ab.npz``."""
        return (
            f"{_THEORY.slug(self.params)}_{self.lattice}"
            f"_n{self.n_configs}_s{self.seed}-{self.key()}.npz"
        )

    def sampler_options(self) -> dict[str, int | None]:
        """The data-changing sampler options (keyword arguments of ``generate_ensemble``)."""
        return {
            "n_chains": self.n_chains,
            "n_therm": self.n_therm,
            "sweeps_between": self.sweeps_between,
        }


def _lattice_key(lattice: Lattice) -> dict[str, Any]:
    """The lattice's part of a key: ``{"nt", "nx"}`` in 2D (the keys of the 2D cache, unchanged),
    ``{"shape": [...]}`` in d = 3, 4 dimensions."""
    return lattice.as_dict()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def _checksum(arrays: Mapping[str, np.ndarray], meta_json: str) -> str:
    h = hashlib.sha256()
    for name in _ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(meta_json.encode())
    return h.hexdigest()


def _freeze(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _check_arrays(arrays: Mapping[str, np.ndarray], req: EnsembleRequest) -> None:
    """Shapes, dtypes, finiteness and the theory's constraints on closed configurations."""
    n, lattice = req.n_configs, req.lattice
    c = arrays["configs"]
    expected = (n, _THEORY.n_channels(lattice.dims), *lattice.shape)
    if c.shape != expected:
        raise ValueError(f"configs has shape {c.shape}, expected {expected}")
    for name in _THEORY.observable_names:
        if arrays[name].shape != (n,):
            raise ValueError(f"{name} has shape {arrays[name].shape}, expected {(n,)}")
        if not np.all(np.isfinite(arrays[name])):
            raise ValueError(f"{name} contains non-finite values")
    _THEORY.check_closed(c, dims=lattice.dims)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere; durability only, not correctness
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Any], None]) -> None:
    """Write via ``write(fileobj)`` to a temp file beside ``path``, fsync, then ``os.replace``.

    On any exception (or interrupt) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


# --------------------------------------------------------------------------- cross-host lease lock
class CacheLockTimeout(TimeoutError):
    """Waiting for another process's lease on a cache key took longer than the timeout."""


class StaleLockWarning(RuntimeWarning):
    """A lease left by a dead or hung holder was taken over."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but not ours (or an absurd pid: do not judge it dead)
    return True


def _pid_namespace() -> str | None:
    """This process's PID namespace (``"pid:[<inode>]"`` on Linux; None where unknown).

    Pids are only comparable within one namespace: two containers on one node may share its host
    name (e.g. ``docker run --network host``) but each has its own pids.
    """
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _check_lease_times(stale_after: float, heartbeat: float) -> None:
    if not (heartbeat > 0 and stale_after > 2 * heartbeat):
        raise ValueError(
            f"need heartbeat > 0 and stale_after > 2 * heartbeat, got {heartbeat} and {stale_after}"
        )


class LeaseLock:
    """An exclusive lease on ``path`` that works across hosts sharing a directory (NFS included).

    It needs no ``flock``/``fcntl``: only atomic ``link``/``rename`` and ``mtime`` updates, which NFSv3+
    and local file systems provide. See the module docstring ("Concurrency") for the protocol.

    Args:
        path: the lease file, e.g. ``<key>.lease``.
        stale_after: seconds without a heartbeat (server-clock ``mtime`` age) after which a lease counts
            as abandoned and may be taken over.
        heartbeat: seconds between the holder's ``mtime`` refreshes (must be < ``stale_after / 2``).
        poll: longest pause between a waiter's attempts.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stale_after: float = 120.0,
        heartbeat: float = 10.0,
        poll: float = 0.5,
    ) -> None:
        _check_lease_times(stale_after, heartbeat)
        self.path = Path(path)
        self.stale_after = float(stale_after)
        self.heartbeat = float(heartbeat)
        self.poll = float(poll)
        self.host = socket.gethostname()
        self.pid_ns = _pid_namespace()
        self.token: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple[Any, float] | None = None  # (lease identity, monotonic time first seen)

    # -- helpers ------------------------------------------------------------------------------
    def _side(self, token: str, kind: str) -> Path:
        # names never end in ".tmp", so the cache's clean-up of stale temporaries never touches them
        return self.path.with_name(f".{self.path.name}.{token}.{kind}")

    def _read(self, path: Path | None = None) -> dict[str, Any]:
        try:
            info = json.loads((path or self.path).read_text())
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _try_create(self, token: str) -> tuple[bool, float]:
        """Try to create the lease (whole, with its JSON); returns (created, server time now)."""
        claim = self._side(token, "claim")
        info = {
            "host": self.host,
            "pid": os.getpid(),
            "pid_ns": self.pid_ns,
            "token": token,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        claim.write_text(json.dumps(info))
        try:
            os.utime(claim)  # on NFS the server sets the time: the claim doubles as a clock probe
            now = claim.stat().st_mtime
            try:
                os.link(claim, self.path)  # atomic; fails with EEXIST if a lease exists
                return True, now
            except FileExistsError:
                return False, now
            except OSError as exc:
                # NFS: a retried LINK can report an error although it succeeded; the link count tells
                if claim.stat().st_nlink == 2:
                    return True, now
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
            # file systems without hard links: O_EXCL create (atomic; content written just after)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False, now
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(info))
            return True, now
        finally:
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()

    def _stale_reason(self, now: float) -> tuple[str | None, dict[str, Any], Any]:
        """Why the current lease is abandoned (None: it is live), its content and identity."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None, {}, None
        info = self._read()
        ident = (st.st_ino, st.st_mtime_ns, info.get("token"))
        same_pids = info.get("host") == self.host and info.get("pid_ns") == self.pid_ns
        if same_pids and isinstance(info.get("pid"), int):
            if not _pid_alive(info["pid"]):
                return f"its holder (pid {info['pid']} on this host) is dead", info, ident
        age = now - st.st_mtime
        if age > self.stale_after:
            return f"no heartbeat for {age:.0f} s (> {self.stale_after:g} s)", info, ident
        # clock-free back-up: the lease has not changed for stale_after s of our own monotonic clock
        t = time.monotonic()
        if self._seen is None or self._seen[0] != ident:
            self._seen = (ident, t)
        elif t - self._seen[1] > self.stale_after:
            return (
                f"unchanged for {t - self._seen[1]:.0f} s (> {self.stale_after:g} s)",
                info,
                ident,
            )
        return None, info, ident

    def _take_over(self, reason: str, info: dict[str, Any], ident: Any) -> None:
        """Move an abandoned lease aside; only one of several racing takers can move a given file."""
        tomb = self._side(uuid.uuid4().hex, "stale")
        try:
            os.rename(self.path, tomb)
        except FileNotFoundError:
            return  # someone else moved it (or its holder released it)
        try:
            st = tomb.stat()
            moved = self._read(tomb)
            if (st.st_ino, st.st_mtime_ns, moved.get("token")) != ident:
                # the lease changed between our look and the rename: it is a fresh one, put it back
                with contextlib.suppress(FileExistsError):
                    os.link(tomb, self.path)
                return
            holder = f"{info.get('host', '?')} pid {info.get('pid', '?')}"
            msg = f"took over the abandoned cache lock {self.path} (held by {holder}): {reason}"
            log.warning(msg)
            warnings.warn(msg, StaleLockWarning, stacklevel=4)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tomb.unlink()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            # a waiter may move a live lease aside for an instant (and put it back): look twice
            if self._read().get("token") != self.token and not (
                self._stop.wait(0.05) or self._read().get("token") == self.token
            ):
                self.lost = True
                log.error("lost the cache lock %s to another process", self.path)
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)  # on NFS: set to the server's time

    # -- public API ---------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> None:
        """Wait for the lease (``None``: as long as it takes); :class:`CacheLockTimeout` after ``timeout``."""
        if self.token is not None:
            raise RuntimeError(f"{self.path} is already held by this LeaseLock")
        token = uuid.uuid4().hex
        deadline = None if timeout is None else time.monotonic() + timeout
        pause, waited = 0.02, False
        self._seen = None
        while True:
            created, now = self._try_create(token)
            if created:
                break
            reason, info, ident = self._stale_reason(now)
            if reason is not None:
                self._take_over(reason, info, ident)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                holder = f"{info.get('host', '?')} pid {info.get('pid', '?')}"
                raise CacheLockTimeout(
                    f"timed out after {timeout:g} s waiting for the cache lock {self.path}, held by "
                    f"{holder} (it is taken over once its heartbeat is {self.stale_after:g} s old)"
                )
            if not waited:
                log.info("waiting for another process holding %s", self.path)
                waited = True
            sleep = pause if deadline is None else min(pause, max(deadline - time.monotonic(), 0))
            time.sleep(sleep)
            pause = min(pause * 1.5, self.poll)
        self.token, self.lost = token, False
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease:{self.path.name}", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lease, but only if it is still ours."""
        if self.token is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        token, self.token, self._thread = self.token, None, None
        aside = self._side(token, "release")
        try:
            os.rename(self.path, aside)  # atomic: nobody can swap the file while we inspect it
        except FileNotFoundError:
            log.warning("the cache lock %s was gone at release (taken over?)", self.path)
            return
        try:
            if self._read(aside).get("token") != token:
                log.warning(
                    "the cache lock %s was taken over by another process; left it", self.path
                )
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                aside.unlink()

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _default_generator() -> tuple[Generator, str]:
    # lazy: the numba kernels load only when sampling
    return _THEORY.generate, _THEORY.sampler_version


class EnsembleCache:
    """Ensembles stored under ``<root>/ensembles``; see the module docstring for the guarantees.

    Args:
        root: cache directory (created on the first write, never before the inputs are validated).
        generator: callable with the signature of ``scalar_ml.physics.generate_ensemble``; defaults to
            it (imported lazily). Injected generators are how tests count and break generations.
        algorithm: a version tag of the generator's algorithm, part of the key. ``None`` with the
            default generator uses the version the sampler module declares (if any).
        lock_timeout: seconds to wait for another process generating the same ensemble (``None``:
            wait as long as it takes); :class:`CacheLockTimeout` (a ``TimeoutError``) when exceeded.
        lock_stale_after: seconds without a heartbeat after which a key's lease counts as abandoned
            (its holder died or hangs on another host) and is taken over.
        lock_heartbeat: seconds between the generating process's heartbeats on its lease.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        generator: Generator | None = None,
        algorithm: str | None = None,
        lock_timeout: float | None = None,
        lock_stale_after: float = 120.0,
        lock_heartbeat: float = 10.0,
    ) -> None:
        self.root = Path(root)
        self.directory = self.root / "ensembles"
        self._generator = generator
        self._algorithm = algorithm
        self.lock_timeout = lock_timeout
        _check_lease_times(lock_stale_after, lock_heartbeat)
        self.lock_stale_after = lock_stale_after
        self.lock_heartbeat = lock_heartbeat

    # -- public API ---------------------------------------------------------------------------
    def request(
        self,
        params: PhysicsParams,
        lattice: Lattice,
        n_configs: int,
        seed: int,
        **sampler_options: Any,
    ) -> EnsembleRequest:
        """Validated request for these inputs (raises before any disk access)."""
        return EnsembleRequest.create(
            params, lattice, n_configs, seed, algorithm=self._algorithm_tag(), **sampler_options
        )

    def path(
        self,
        params: PhysicsParams,
        lattice: Lattice,
        n_configs: int,
        seed: int,
        **sampler_options: Any,
    ) -> Path:
        """Where the ensemble for these inputs is (or would be) stored."""
        req = self.request(params, lattice, n_configs, seed, **sampler_options)
        return self.directory / req.filename()

    def get(
        self,
        params: PhysicsParams,
        lattice: Lattice,
        n_configs: int,
        seed: int,
        **sampler_options: Any,
    ) -> Ensemble:
        """The ensemble for these inputs: from disk if a valid entry exists, else generated and stored.

        ``sampler_options``: ``n_chains``, ``n_therm``, ``sweeps_between`` (part of the key) and
        ``progress`` (not). Invalid inputs raise ``ValueError``/``TypeError`` before any disk access.
        """
        progress = bool(sampler_options.get("progress", False))
        req = self.request(params, lattice, n_configs, seed, **sampler_options)
        path = self.directory / req.filename()

        if path.exists():  # fast path: entries only ever appear whole, no lock needed to read
            with contextlib.suppress(_CorruptEntry):
                return self._read(path, req)

        self.directory.mkdir(parents=True, exist_ok=True)
        lock = LeaseLock(
            path.with_suffix(".lease"),
            stale_after=self.lock_stale_after,
            heartbeat=self.lock_heartbeat,
        )
        lock.acquire(timeout=self.lock_timeout)
        try:
            if path.exists():
                try:
                    return self._read(path, req)
                except _CorruptEntry as exc:
                    msg = f"ensemble cache entry {path} is unusable ({exc}); regenerating it"
                    warnings.warn(msg, CacheCorruptionWarning, stacklevel=2)
            self._remove_stale_temporaries(path)
            return self._generate_and_store(req, path, progress)
        finally:
            lock.release()

    # -- internals ----------------------------------------------------------------------------
    def _algorithm_tag(self) -> str | None:
        if self._algorithm is not None or self._generator is not None:
            return self._algorithm
        _, version = _default_generator()
        return version

    def _generator_fn(self) -> Generator:
        if self._generator is not None:
            return self._generator
        gen, _ = _default_generator()
        return gen

    def _remove_stale_temporaries(self, path: Path) -> None:
        # Under the key's lock nobody else writes this key: leftovers are from killed processes.
        for tmp in path.parent.glob(f".{path.stem}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                log.info("removed stale temporary file %s", tmp)

    def _generate_and_store(self, req: EnsembleRequest, path: Path, progress: bool) -> Ensemble:
        t0 = time.perf_counter()
        ens = self._generator_fn()(
            req.params,
            req.lattice,
            req.n_configs,
            req.seed,
            **req.sampler_options(),
            progress=progress,
        )
        elapsed = time.perf_counter() - t0
        try:
            arrays = {"configs": np.asarray(ens.configs)} | {
                name: np.asarray(_THEORY.series(ens, name), dtype=np.float64)
                for name in _THEORY.observable_names
            }
            c = arrays["configs"]
            if not np.issubdtype(c.dtype, np.integer):
                raise ValueError(f"configs must be integers, got dtype {c.dtype}")
            if c.size and (c.min() < np.iinfo(np.int32).min or c.max() > np.iinfo(np.int32).max):
                raise ValueError("configs do not fit into int32")
            arrays["configs"] = c.astype(np.int32, copy=False)
            _check_arrays(arrays, req)
        except ValueError as exc:
            raise RuntimeError(f"the generator returned an invalid ensemble: {exc}") from exc

        from scalar_ml import __version__

        meta = dict(ens.meta or {})
        meta.setdefault("params", _THEORY.values(req.params))
        meta.setdefault("lattice", req.lattice.as_dict())
        meta.setdefault("n_configs", req.n_configs)
        meta.setdefault("seed", req.seed)
        meta.setdefault("sampler_options", req.sampler_options())
        meta["cache"] = {
            "format_version": FORMAT_VERSION,
            "key": req.key(),
            "key_payload": req.key_payload(),
            "file": path.name,
            "package_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "generation_s": round(elapsed, 6),
        }
        meta_json = json.dumps(meta, sort_keys=True, default=_json_default)
        digest = _checksum(arrays, meta_json)

        def write_npz(f: Any) -> None:
            np.savez_compressed(f, **arrays, meta=np.array(meta_json), checksum=np.array(digest))

        atomic_write(path, write_npz)
        sidecar = {**json.loads(meta_json), "checksum_sha256": digest}
        sidecar_bytes = json.dumps(sidecar, indent=2, sort_keys=True).encode() + b"\n"
        try:  # a readable copy only: the .npz is complete and authoritative already
            atomic_write(path.with_suffix(".json"), lambda f: f.write(sidecar_bytes))
        except OSError as exc:
            log.warning("could not write the metadata sidecar of %s: %s", path.name, exc)
        log.info("generated %s in %.2f s", path.name, elapsed)
        return self._make_ensemble(arrays, meta_json, digest)

    def _read(self, path: Path, req: EnsembleRequest) -> Ensemble:
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {*_ARRAYS, "meta", "checksum"} - set(z.files)
                if missing:
                    raise _CorruptEntry(f"missing arrays {sorted(missing)}")
                arrays = {name: z[name] for name in _ARRAYS}
                meta_json = str(z["meta"][()])
                stored = str(z["checksum"][()])
        except _CorruptEntry:
            raise
        except Exception as exc:  # truncated zip, bad CRC, bad header...: all mean "unusable"
            raise _CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
        if _checksum(arrays, meta_json) != stored:
            raise _CorruptEntry("checksum mismatch")
        try:
            meta = json.loads(meta_json)
            payload = meta["cache"]["key_payload"]
        except (ValueError, KeyError, TypeError) as exc:
            raise _CorruptEntry(f"unreadable metadata: {exc}") from exc
        if payload != req.key_payload():
            raise _CorruptEntry("the file belongs to a different request")
        if arrays["configs"].dtype != np.int32 or any(
            arrays[k].dtype != np.float64 for k in _THEORY.observable_names
        ):
            raise _CorruptEntry("unexpected dtypes")
        try:
            _check_arrays(arrays, req)
        except ValueError as exc:
            raise _CorruptEntry(str(exc)) from exc
        return self._make_ensemble(arrays, meta_json, stored)

    @staticmethod
    def _make_ensemble(arrays: Mapping[str, np.ndarray], meta_json: str, digest: str) -> Ensemble:
        meta = json.loads(meta_json)
        meta["cache"]["checksum_sha256"] = digest
        return _THEORY.ensemble(
            _freeze(arrays["configs"]),
            {name: _freeze(arrays[name]) for name in _THEORY.observable_names},
            meta,
        )


def load_ensemble(
    params: PhysicsParams,
    lattice: Lattice,
    n_configs: int,
    seed: int,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    **sampler_options: Any,
) -> Ensemble:
    """The cached ensemble for these inputs (generated on a miss) from ``cache_dir``.

    ``cache_dir=None`` uses :func:`scalar_ml.paths.default_data_dir` (``$SCALAR_ML_DATA_DIR`` or
    ``<project root>/data``). ``sampler_options`` as for :meth:`EnsembleCache.get`.
    """
    from scalar_ml.paths import default_data_dir

    root = default_data_dir() if cache_dir is None else Path(cache_dir)
    return EnsembleCache(root).get(params, lattice, n_configs, seed, **sampler_options)
