"""Helpers of :func:`scalar_ml.training.train.train`: seeds, config checks, instantiation, JSON output."""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = [
    "MAX_SEED",
    "check_ckpt_path",
    "check_fresh_output_dir",
    "draw_seed",
    "instantiate_dict",
    "jsonable",
    "load_error",
    "read_checkpoint_info",
    "resolve_seed",
    "validate_seed",
    "write_json_atomic",
]

log = logging.getLogger(__name__)

#: Largest seed accepted (Lightning's ``seed_everything`` limit, numpy's 32-bit legacy seeding).
MAX_SEED: int = 2**32 - 1


def validate_seed(seed: Any) -> int:
    """Return ``seed`` as an int, or raise ``ValueError`` unless it is an integer in ``[0, 2**32 - 1]``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be null or an integer in [0, {MAX_SEED}], got {seed!r}")
    return int(seed)


def draw_seed() -> int:
    """A fresh random seed in ``[0, 2**31)`` (from the OS entropy pool)."""
    return secrets.randbelow(2**31)


def check_ckpt_path(ckpt_path: Any) -> Path | None:
    """``None`` or the path of an existing checkpoint file (``FileNotFoundError`` otherwise)."""
    if ckpt_path is None:
        return None
    if not isinstance(ckpt_path, str | os.PathLike) or not str(ckpt_path):
        raise ValueError(f"ckpt_path must be a file path or null, got {ckpt_path!r}")
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.ckpt")) if path.parent.is_dir() else []
        hint = (
            f"; {path.parent} holds {', '.join(found)}"
            if found
            else "; give a checkpoint file, e.g. ckpt_path=<run dir>/checkpoints/last.ckpt"
        )
        what = "is a directory" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"ckpt_path {str(path)!r} {what}{hint}")
    return path.resolve()


def load_error(path: Path, exc: BaseException) -> ValueError:
    """A one-line ``ValueError`` for a checkpoint ``torch.load(..., weights_only=True)`` cannot read."""
    text = str(exc)
    if "Weights only load failed" in text:
        reason = (
            "it holds objects other than tensors and plain data, which weights-only loading "
            "refuses (not a checkpoint written by train.py?)"
        )
    else:
        reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ValueError(f"cannot read checkpoint {str(path)!r}: {reason}")


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """The ``scalar_ml`` record (seed, config, data) stored in a checkpoint by :class:`RunInfo`.

    Also ``previous_best``: ``(path, score)`` of the best checkpoint the ``val/loss``
    ``ModelCheckpoint`` had recorded (``None`` if unknown), so that a resumed run (which writes into
    a new directory) can still evaluate the overall best epoch; and ``network``: the stored
    network's ``task``, ``preset`` and parameter ``shapes`` (``{name: shape}``), which a resumed run
    must match.
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable: tell which file and why, before any work
        raise load_error(path, exc) from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict)")
    info = ckpt.get("scalar_ml")
    out = dict(info) if isinstance(info, Mapping) else {}
    hp = ckpt.get("hyper_parameters")
    hp = hp if isinstance(hp, Mapping) else {}
    out["network"] = {
        "task": hp.get("task"),
        "preset": hp.get("preset"),
        "shapes": {
            str(k): tuple(v.shape) for k, v in ckpt["state_dict"].items() if hasattr(v, "shape")
        },
    }
    out["previous_best"] = None
    for key, state in (ckpt.get("callbacks") or {}).items():
        if not (str(key).startswith("ModelCheckpoint") and isinstance(state, Mapping)):
            continue
        score, best = state.get("best_model_score"), state.get("best_model_path")
        if state.get("monitor") == "val/loss" and score is not None and best:
            out["previous_best"] = (str(best), float(score))
            break
    return out


def resolve_seed(requested: Any, ckpt_info: Mapping[str, Any] | None = None) -> int:
    """The seed to use: the requested one, else the checkpoint's (when resuming), else a drawn one."""
    ckpt_seed = (ckpt_info or {}).get("seed")
    if requested is not None:
        seed = validate_seed(requested)
        if ckpt_seed is not None and ckpt_seed != seed:
            log.warning(
                "resuming with seed %d, but the checkpoint was trained with seed %d: the batch order "
                "differs from an uninterrupted run",
                seed,
                ckpt_seed,
            )
        return seed
    if ckpt_seed is not None:
        log.info("seed: null, using the checkpoint's seed %d", ckpt_seed)
        return validate_seed(ckpt_seed)
    seed = draw_seed()
    log.info("seed: null, drew seed %d (recorded in config_resolved.yaml and metrics.json)", seed)
    return seed


def check_fresh_output_dir(output_dir: Path) -> None:
    """Refuse to train into a run directory that already holds results (nothing is overwritten)."""
    taken = [output_dir / "metrics.json", output_dir / "config_resolved.yaml"]
    taken += sorted((output_dir / "checkpoints").glob("*.ckpt"))
    existing = [str(p) for p in taken if p.exists()]
    if existing:
        raise FileExistsError(
            f"the run directory {str(output_dir)!r} already holds results ({', '.join(existing[:3])}); "
            "choose a new one (the default hydra.run.dir is unique per run) instead of overwriting"
        )


def instantiate_dict(node: DictConfig | Mapping[str, Any] | None, what: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict config (loggers, callbacks); ``None`` entries skip."""
    from hydra.utils import instantiate

    if node is None:
        return []
    if not isinstance(node, DictConfig | Mapping):
        raise ValueError(f"{what} must be a mapping of name -> {{_target_: ...}}, got {node!r}")
    out = []
    for name, conf in node.items():
        if conf is None:
            continue
        if not isinstance(conf, DictConfig | Mapping) or "_target_" not in conf:
            raise ValueError(f"{what}.{name} must be a config with a _target_, got {conf!r}")
        log.info("instantiating %s %s <%s>", what, name, conf["_target_"])
        out.append(instantiate(conf))
    return out


def jsonable(value: Any) -> Any:
    """Plain JSON values: tensors/numpy scalars to numbers, non-finite floats kept as strings."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": JSON has no literal for them
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON via a temporary file and ``os.replace`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(jsonable(data), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
