"""Find training checkpoints and load them safely (weights only) with what is known about their run.

``ckpt_path`` may be (or be a list of):

- a checkpoint file (``.../checkpoints/last.ckpt``, ``.../epoch_007.ckpt``);
- a run directory of ``train.py`` (it holds ``checkpoints/``): its best checkpoint (the one
  ``metrics.json`` names, else the best ``ModelCheckpoint`` score) or ``last.ckpt`` with
  ``which="last"``;
- a multirun directory (or any directory above run directories): every run below it;
- a glob pattern (``logs/train/multiruns/*/*/checkpoints/last.ckpt``, ``**`` allowed).

Loading never unpickles arbitrary objects: ``torch.load(path, weights_only=True)``. The network is
rebuilt from the checkpoint's hyperparameters (``hparams.spec``, the exact layer spec) as a
:class:`~scalar_ml.training.module.LatticeModule` and its ``net.*`` weights are loaded strictly.
The training record that :class:`~scalar_ml.training.callbacks.RunInfo` stores in the checkpoint
(seed, resolved config, data description) gives the training lattice, data seed and ``n_train``;
the run directory gives ``metrics.json`` (the validation loss of the evaluated checkpoint) and
``.hydra/overrides.yaml`` (what distinguishes the jobs of a multirun).
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CheckpointRecord", "assign_labels", "find_checkpoints", "load_checkpoint"]

_WHICH = ("best", "last")


@dataclass
class CheckpointRecord:
    """What evaluation needs to know about one checkpoint (all plain values)."""

    path: Path
    run_dir: Path | None
    task: str
    preset: str | None
    family: str
    spec: dict[str, Any]
    n_parameters: int
    seed: int | None
    data: dict[str, Any] = field(default_factory=dict)
    val_loss: float = math.nan
    epoch: int | None = None
    overrides: list[str] = field(default_factory=list)
    label: str = ""
    variant: str = ""

    @property
    def train_lattice(self) -> tuple[int, ...] | None:
        """The training lattice's shape (``(nt, nx)`` in 2D), from the data description or, for
        an fl network without one, its input size."""
        lat = self.data.get("lattice")
        if isinstance(lat, Mapping) and {"nt", "nx"} <= set(lat):
            return int(lat["nt"]), int(lat["nx"])
        if isinstance(lat, Mapping) and isinstance(lat.get("shape"), list):
            return tuple(int(n) for n in lat["shape"])
        size = self.spec.get("input_size")
        return tuple(int(n) for n in size) if size else None

    @property
    def n_train(self) -> int | None:
        value = self.data.get("n_train")
        return int(value) if isinstance(value, int) else None

    @property
    def data_seed(self) -> int | None:
        value = self.data.get("seed")
        return int(value) if isinstance(value, int) else None

    @property
    def model_name(self) -> str:
        """The preset name, or ``custom-<family>`` for a hand-written network."""
        return self.preset or f"custom-{self.family}"

    @property
    def group(self) -> str:
        """What checkpoints of one architecture and training setup share (aggregated over seeds)."""
        return f"{self.model_name} {self.variant}" if self.variant else self.model_name


def _best_in_run(run_dir: Path, which: str) -> Path | None:
    ckpt_dir = run_dir / "checkpoints"
    if which == "last":
        last = ckpt_dir / "last.ckpt"
        return last if last.is_file() else None
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        try:
            info = json.loads(metrics.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        for key in ("best_checkpoint", "evaluated_checkpoint"):
            name = info.get(key)
            if isinstance(name, str) and name:
                cand = Path(name)
                if not cand.is_absolute():
                    cand = run_dir / cand
                if cand.is_file():
                    return cand
                # The run directory may have moved: look for the same file name here.
                moved = ckpt_dir / Path(name).name
                if moved.is_file():
                    return moved
    others = sorted(p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt")
    if len(others) == 1:
        return others[0]
    if others:  # several: the best ModelCheckpoint score recorded in last.ckpt, else the newest
        best = _best_path_from_last(ckpt_dir)
        if best is not None:
            return best
        return max(others, key=lambda p: p.stat().st_mtime)
    last = ckpt_dir / "last.ckpt"
    return last if last.is_file() else None


def _best_path_from_last(ckpt_dir: Path) -> Path | None:
    last = ckpt_dir / "last.ckpt"
    if not last.is_file():
        return None
    import torch

    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
    except Exception:
        return None
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(state, Mapping):
            name = state.get("best_model_path")
            if name and (ckpt_dir / Path(name).name).is_file():
                return ckpt_dir / Path(name).name
    return None


def _runs_below(directory: Path) -> list[Path]:
    if (directory / "checkpoints").is_dir():
        return [directory]
    return sorted({p.parent for p in directory.rglob("checkpoints") if p.is_dir()})


def find_checkpoints(
    ckpt_path: str | os.PathLike[str] | Sequence[Any], which: str = "best"
) -> list[Path]:
    """Resolve ``ckpt_path`` (file, run dir, multirun dir, glob, or a list of them) to checkpoint files.

    Raises:
        ValueError: bad ``which`` or an empty specification.
        FileNotFoundError: nothing matches (the message says what was looked for).
    """
    if which not in _WHICH:
        raise ValueError(f"checkpoint must be one of {', '.join(_WHICH)}, got {which!r}")
    if ckpt_path is None or (isinstance(ckpt_path, str) and not ckpt_path.strip()):
        raise ValueError(
            "ckpt_path is required: a checkpoint, a run or multirun directory, or a glob"
        )
    items: Iterable[Any] = (
        [ckpt_path] if isinstance(ckpt_path, str | os.PathLike) else list(ckpt_path)
    )
    found: list[Path] = []
    for item in items:
        text = os.path.expanduser(str(item))
        if glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise FileNotFoundError(f"ckpt_path pattern {text!r} matches nothing")
        else:
            matches = [Path(text)]
        for path in matches:
            if path.is_file():
                found.append(path.resolve())
            elif path.is_dir():
                runs = _runs_below(path)
                picked = [c for c in (_best_in_run(r, which) for r in runs) if c is not None]
                if not picked:
                    raise FileNotFoundError(
                        f"no checkpoints under {str(path)!r} (looked for run directories with a "
                        "checkpoints/ folder; fast_dev_run trainings write none)"
                    )
                found.extend(p.resolve() for p in picked)
            else:
                raise FileNotFoundError(f"ckpt_path {str(path)!r} does not exist")
    out = list(dict.fromkeys(found))  # dedupe, keep order
    bad = [p for p in out if p.suffix != ".ckpt"]
    if bad:
        raise ValueError(f"not checkpoint files (*.ckpt): {', '.join(map(str, bad[:3]))}")
    return out


def _run_dir_of(path: Path) -> Path | None:
    if path.parent.name == "checkpoints":
        return path.parent.parent
    return None


def _read_overrides(run_dir: Path | None) -> list[str]:
    if run_dir is None:
        return []
    file = run_dir / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return []
    from omegaconf import OmegaConf

    try:
        values = OmegaConf.to_container(OmegaConf.load(file))
    except Exception:
        return []
    return [str(v) for v in values] if isinstance(values, list) else []


def _val_loss(ckpt: Mapping[str, Any], path: Path, run_dir: Path | None) -> float:
    """The validation loss of this checkpoint: metrics.json (if it evaluated this file), else its ModelCheckpoint score."""
    if run_dir is not None and (run_dir / "metrics.json").is_file():
        try:
            info = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        evaluated = info.get("evaluated_checkpoint")
        if isinstance(evaluated, str) and Path(evaluated).name == path.name:
            value = info.get("val/loss")
            if isinstance(value, int | float):
                return float(value)
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(state, Mapping):
            score = state.get("current_score")
            if score is not None:
                try:
                    return float(score)
                except (TypeError, ValueError):
                    pass
    return math.nan


def load_checkpoint(path: Path) -> tuple[CheckpointRecord, Any]:
    """Read one checkpoint (weights only) -> ``(record, LatticeModule in eval mode)``.

    Raises:
        ValueError: the file is not a checkpoint of :class:`LatticeModule` (with the reason).
    """
    import torch

    from scalar_ml.training.module import LatticeModule

    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        from scalar_ml.training.utils import load_error

        raise load_error(path, exc) from exc
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise ValueError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict)")
    hp = ckpt.get("hyper_parameters") or {}
    if not isinstance(hp, Mapping) or "task" not in hp or "spec" not in hp:
        raise ValueError(
            f"{str(path)!r} has no scalar-ml hyperparameters (task, spec): was it written by train.py?"
        )
    module = LatticeModule(task=hp["task"], spec=hp["spec"], preset=hp.get("preset"))
    weights = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        module.net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in {str(path)!r} do not fit its layer spec: {exc}") from exc
    module.eval()
    info = ckpt.get("scalar_ml") or {}
    run_dir = _run_dir_of(path)
    spec = dict(hp["spec"])
    record = CheckpointRecord(
        path=path,
        run_dir=run_dir,
        task=str(hp["task"]),
        preset=hp.get("preset"),
        family=str(spec.get("family", module.net.family)),
        spec=spec,
        n_parameters=int(hp.get("n_parameters", sum(p.numel() for p in module.parameters()))),
        seed=info.get("seed") if isinstance(info.get("seed"), int) else None,
        data=dict(info.get("data") or {}),
        val_loss=_val_loss(ckpt, path, run_dir),
        epoch=int(ckpt["epoch"]) if isinstance(ckpt.get("epoch"), int) else None,
        overrides=_read_overrides(run_dir),
    )
    return record, module


def assign_labels(records: Sequence[CheckpointRecord]) -> None:
    """Set ``label`` (a short unique name relative to the common directory) and ``variant``.

    ``variant`` is the run's Hydra overrides without the seed, the model choice (the ``preset``
    column says which network), paths, hydra settings and the overrides that all evaluated runs
    share: what distinguishes e.g. the ``data.n_train`` jobs of a multirun. Checkpoints of one
    model and variant differ only by their seed; ``""`` when nothing distinguishes them.
    """
    if not records:
        return
    paths = [str(r.path) for r in records]
    common = os.path.commonpath(paths) if len(paths) > 1 else str(records[0].path.parent)
    for r in records:
        rel = os.path.relpath(r.path, common)
        r.label = rel if rel != "." else r.path.name

    def keep(o: str) -> bool:
        key = o.split("=", 1)[0].lstrip("+~")
        return key not in _NOT_VARIANT and not key.startswith(
            ("hydra.", "paths.", "logger", "callbacks")
        )

    filtered = [[o for o in r.overrides if keep(o)] for r in records]
    shared = set.intersection(*(set(f) for f in filtered))
    for r, f in zip(records, filtered, strict=True):
        r.variant = ",".join(o for o in f if o not in shared)


#: Override keys that never define a variant (the seed, the model choice, bookkeeping).
_NOT_VARIANT = frozenset(
    {"seed", "model", "model.preset", "experiment", "task_name", "trainer", "debug", "tags"}
)
