"""How the command-line apps report a user's mistake: one line, a non-zero exit, nothing half-written.

``train.py``, ``evaluate.py`` and ``python -m scalar_ml.sample`` check everything they are given
before any work (unknown keys and wrong types at composition by Hydra and :mod:`scalar_ml.schemas`;
values by the validated objects, raising :class:`~scalar_ml.config.ConfigError`; a missing
checkpoint; a network that does not fit the lattice). :func:`report_user_errors` turns such an
error into::

    train.py: error: data.n_train must be an integer >= 1, got 0

on stderr with exit status 2, removes what Hydra wrote into the job's run directory (its
``.hydra/*.yaml`` and log file; a directory that held anything else is left alone), and prints no
traceback unless ``HYDRA_FULL_ERROR=1``. Errors during the work itself are bugs or failures of the
machine, not of the input: they keep their traceback. In a multirun (``-m``) the error is re-raised,
so that the sweeper records a failed job and goes on instead of the whole sweep exiting.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalar_ml.config import ConfigError

__all__ = ["UserError", "discard_run_dir", "report_user_errors"]


class UserError(ConfigError):
    """A mistake in what the user asked for, found before any work (printed as one line)."""


def discard_run_dir(run_dir: Path) -> None:
    """Remove what Hydra wrote for a refused job (its .hydra/*.yaml and log file), nothing else."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        filename = getattr(handler, "baseFilename", None)
        if filename and Path(filename).parent == run_dir:
            root.removeHandler(handler)
            handler.close()
            Path(filename).unlink(missing_ok=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run_dir / ".hydra" / name).unlink(missing_ok=True)
    for d in (run_dir / ".hydra", run_dir):
        try:
            d.rmdir()  # only if empty: never removes anything the user put there
        except OSError:
            pass


def _hydra_run_dir() -> tuple[Path | None, bool]:
    """``(this job's run directory, whether it is a multirun job)``, ``(None, False)`` outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return None, False
    return Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN


@contextmanager
def report_user_errors(
    prog: str, *, keep: Callable[[Path], bool] = lambda _: False
) -> Iterator[None]:
    """Print a :class:`~scalar_ml.config.ConfigError` raised inside as ``<prog>: error: ...``, exit 2.

    ``keep(run_dir)`` says whether the run directory holds something that must stay (then it is not
    cleaned up).
    """
    try:
        yield
    except ConfigError as exc:
        run_dir, multirun = _hydra_run_dir()
        if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if run_dir is not None and not keep(run_dir):
            discard_run_dir(run_dir)
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def as_user_error(exc: BaseException, what: str = "") -> UserError:
    """A :class:`UserError` carrying ``exc``'s message (prefixed by ``what``), chained to it."""
    message = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
    error = UserError(f"{what}: {message}" if what else message)
    error.__cause__ = exc
    return error


def call_checked(fn: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, with a bad value or a missing file turned into a :class:`UserError`."""
    try:
        return fn(*args, **kwargs)
    except UserError:
        raise
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError) as exc:
        raise as_user_error(exc, what) from exc
