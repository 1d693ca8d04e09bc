"""``train(cfg) -> metrics``: one training run from a composed Hydra config (``conf/train.yaml``).

Order of work (every check happens before any sampling or training, and nothing stored is
overwritten; :func:`plan_training` does steps 1-3 and raises :class:`~scalar_ml.cli.UserError` for
any mistake of the input, which ``train.py`` prints as one line):

1. checks: ``ckpt_path`` exists, the run directory holds no results yet, the seed is valid;
2. the seed: ``cfg.seed``, else the checkpoint's (when resuming), else a drawn one; it is written into
   the config, ``seed_everything(seed, workers=True)``;
3. the model (``cfg.model``: builds and validates the network), the data module (``cfg.data``:
   validates sizes, worm counts, physics), their compatibility (an fl network's fixed lattice, the
   number of outputs), the callbacks, the loggers and the trainer;
4. ``<run dir>/config_resolved.yaml`` (the composed config, resolved, with the seed actually used);
5. ``trainer.fit`` (sampling missing ensembles into the cache first), then the best checkpoint is
   evaluated on the validation and test splits;
6. ``<run dir>/metrics.json``: the final metrics plus the seed, checkpoints, epochs and timings.

:func:`run` is what ``train.py`` calls: it returns ``cfg.optimized_metric`` as a finite float, the
``divergence_penalty`` when the loss became NaN/inf, and finishes wandb runs after every job.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from scalar_ml.cli import UserError, call_checked
from scalar_ml.config import integer
from scalar_ml.training.utils import (
    check_ckpt_path,
    check_fresh_output_dir,
    instantiate_dict,
    jsonable,
    read_checkpoint_info,
    resolve_seed,
    write_json_atomic,
)

__all__ = [
    "TRAINER_INTEGERS",
    "TrainingPlan",
    "check_trainer",
    "holds_results",
    "plan_training",
    "run",
    "train",
]

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
RESOLVED_CONFIG_FILE = "config_resolved.yaml"


def _global_rank() -> int:
    """This process's global rank as Lightning determines it from the environment (0 if single)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def _check_model_data(model: Any, datamodule: Any) -> None:
    """The network must take the data's lattice and produce the task's targets."""
    from scalar_ml.models.spec import format_size

    lattice = datamodule.lattice.shape
    net = model.net
    if model.task != datamodule.task:
        raise ValueError(
            f"model task {model.task.name!r} does not match data task {datamodule.task.name!r}"
        )
    if net.dims != len(lattice):
        name = model.hparams.get("preset") or "this network"
        raise ValueError(
            f"{name} is {net.dims}-dimensional but the training lattice {format_size(lattice)} is "
            f"{len(lattice)}-dimensional"
        )
    if net.input_size is not None and tuple(net.input_size) != tuple(lattice):
        name = model.hparams.get("preset") or "this fl network"
        raise ValueError(
            f"{name} takes only {format_size(net.input_size)} lattices (flattening fixes the input "
            f"size), but the training lattice is {format_size(lattice)}: choose "
            f"lattice={'x'.join(map(str, net.input_size))} or an eq/st model"
        )
    net.trace(lattice)  # a kernel larger than the lattice raises SpecError here, before sampling


def _training_lattice(cfg: DictConfig) -> Any:
    """The validated training lattice of ``cfg.lattice`` (``ConfigError`` naming ``lattice``)."""
    from scalar_ml.physics.theory import get_theory

    return get_theory().lattice(OmegaConf.to_container(cfg.lattice, resolve=True), key="lattice")


def _instantiate(node: Any, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that re-raises a bad value as itself (``ValueError: <what>: ...``).

    Hydra wraps constructor errors in ``InstantiationException``; unwrapping keeps the error type
    (and so ``pytest.raises``/sweeper handling) meaningful and the message short.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ValueError | TypeError | FileNotFoundError):
            message = str(cause)
            raise type(cause)(
                message if message.startswith(what) else f"{what}: {message}"
            ) from exc
        raise


#: Trainer options that must be integers (``None`` allowed where Lightning allows it), checked
#: before the Trainer is built: Lightning itself fails on e.g. ``max_epochs=1.5`` only mid-fit.
TRAINER_INTEGERS: dict[str, tuple[int, bool]] = {
    "max_epochs": (-1, True),
    "min_epochs": (0, True),
    "max_steps": (-1, False),
    "min_steps": (0, True),
    "check_val_every_n_epoch": (1, True),
    "log_every_n_steps": (1, True),
    "accumulate_grad_batches": (1, False),
    "num_sanity_val_steps": (-1, True),
}


def check_trainer(trainer: Any) -> None:
    """The integer options of ``cfg.trainer`` (:data:`TRAINER_INTEGERS`) and ``gradient_clip_val``.

    >>> check_trainer({"max_epochs": 1.5})
    Traceback (most recent call last):
    ...
    scalar_ml.config.ConfigError: trainer.max_epochs must be null or an integer >= -1, got 1.5
    """
    from scalar_ml.config import number

    for key, (minimum, optional) in TRAINER_INTEGERS.items():
        if key in trainer:
            integer(f"trainer.{key}", trainer[key], minimum=minimum, optional=optional)
    if trainer.get("gradient_clip_val") is not None:
        number("trainer.gradient_clip_val", trainer["gradient_clip_val"], minimum=0)


def _best_checkpoint_callback(trainer: Any) -> Any:
    """The ModelCheckpoint that ranks epochs by a metric (the first one), or ``None``."""
    return next((cb for cb in trainer.checkpoint_callbacks if cb.monitor is not None), None)


def _last_checkpoint(trainer: Any) -> Path | None:
    """``last.ckpt`` as written by the metric-free ModelCheckpoint (``None`` if none was written).

    Under the spawn/fork DDP strategies the callbacks' paths are set in the worker processes only,
    so the file the callback writes (``<dirpath>/<filename>.ckpt``) is looked up on disk too.
    """
    for cb in trainer.checkpoint_callbacks:
        if cb.monitor is not None:
            continue
        path = cb.last_model_path or cb.best_model_path
        if not path and cb.dirpath and cb.filename:
            path = str(Path(cb.dirpath) / f"{cb.filename}{cb.FILE_EXTENSION}")
        if path and Path(path).exists():
            return Path(path)
    return None


def _progress(trainer: Any, last: Path | None) -> tuple[int, int]:
    """``(completed epochs, global step)`` of the fit.

    The trainer's counters, except where they stayed at zero in this process because the fit ran in
    spawned/forked workers (``ddp_spawn``, ``ddp_fork``): then the last checkpoint's counters (its
    ``epoch`` is the 0-based epoch it was saved in, hence ``+ 1``).
    """
    epochs, step = int(trainer.current_epoch), int(trainer.global_step)
    if step == 0 and last is not None:
        import torch

        state = torch.load(last, map_location="cpu", weights_only=True)
        epochs, step = int(state["epoch"]) + 1, int(state["global_step"])
    return epochs, step


def _overall_best(ckpt_cb: Any, best: str, previous: tuple[str, float] | None) -> str:
    """The best checkpoint over the whole training, including the run resumed from.

    A resumed run writes into a new directory, where Lightning's ModelCheckpoint starts its ranking
    afresh; the run it resumed from may hold a better epoch (same val/loss monitor, mode min).
    """
    if (
        previous is None
        or ckpt_cb is None
        or ckpt_cb.monitor != "val/loss"
        or ckpt_cb.mode != "min"
    ):
        return best
    prev_path, prev_score = previous
    score = ckpt_cb.best_model_score
    if Path(prev_path).is_file() and (score is None or prev_score < float(score)):
        log.info(
            "the best epoch is in the run resumed from: %s (val/loss %g)", prev_path, prev_score
        )
        return prev_path
    return best


def _flat_metrics(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(values.items())}


def _finish_wandb() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


@dataclass
class TrainingPlan:
    """Everything a training needs, checked and built, before any sampling or training."""

    cfg: DictConfig
    output_dir: Path
    ckpt_path: Path | None
    ckpt_info: dict[str, Any]
    seed: int
    rank: int
    threads: int | None
    do_train: bool
    model: Any
    datamodule: Any
    loggers: list[Any]
    trainer: Any
    resolved: dict[str, Any]


def plan_training(cfg: DictConfig) -> TrainingPlan:
    """Check the configuration and build model, data module, callbacks, loggers and trainer.

    Samples nothing, trains nothing, writes nothing. Every mistake of the input (a bad value, a
    missing checkpoint, a run directory that holds results, a network that does not fit the
    lattice or the task) raises :class:`~scalar_ml.cli.UserError`, naming the key.
    """
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = call_checked(check_ckpt_path, cfg.get("ckpt_path"), what="ckpt_path")
    do_train = bool(cfg.get("train", True))
    if not do_train and ckpt_path is None:
        raise UserError("train=false evaluates a checkpoint: give ckpt_path=<path to a .ckpt>")
    threads = integer("cpu_threads", cfg.get("cpu_threads"), minimum=1, optional=True)
    check_trainer(cfg.trainer)
    # Under DDP, Lightning re-runs this script for ranks >= 1 with the same run directory: only
    # rank 0 checks it and writes files; the others take rank 0's seed from the environment.
    rank = _global_rank()
    if rank == 0:
        call_checked(check_fresh_output_dir, output_dir)
    ckpt_info = (
        call_checked(read_checkpoint_info, ckpt_path, what="ckpt_path")
        if ckpt_path is not None
        else {}
    )
    requested = cfg.get("seed")
    if requested is None and rank != 0 and os.environ.get("PL_GLOBAL_SEED") is not None:
        requested = int(os.environ["PL_GLOBAL_SEED"])
    seed = call_checked(resolve_seed, requested, ckpt_info)
    lattice = call_checked(_training_lattice, cfg, what="lattice")
    with open_dict(cfg):
        cfg.seed = seed
        model_cfg = cfg.model
        if lattice.dims != 2 and model_cfg.get("dims") is None:
            # a d-dimensional lattice: the network's dimension (2D presets are lifted); 2D configs
            # stay as they were
            model_cfg.dims = lattice.dims
        if (
            model_cfg.get("layers") is not None
            and model_cfg.get("family") == "fl"
            and model_cfg.get("input_size") is None
        ):
            model_cfg.input_size = list(lattice.shape)

    import lightning as L

    from scalar_ml.training.callbacks import RunInfo

    L.seed_everything(seed, workers=True)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    log.info("model <%s>", cfg.model.get("preset") or "custom layers")
    model = call_checked(_instantiate, cfg.model, "model")
    log.info("data <%s>", cfg.data._target_)
    datamodule = call_checked(_instantiate, cfg.data, "data")
    call_checked(_check_model_data, model, datamodule)
    if ckpt_path is not None:
        _check_resumed_network(model, ckpt_info.get("network") or {}, ckpt_path)
    _check_optimized_metric(cfg.get("optimized_metric"), model.task)

    callbacks = call_checked(instantiate_dict, cfg.get("callbacks"), "callbacks")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    callbacks.append(RunInfo(seed, jsonable(resolved), datamodule.describe()))
    loggers = call_checked(instantiate_dict, cfg.get("logger"), "logger")
    if ckpt_info.get("data") and ckpt_info["data"] != datamodule.describe():
        log.warning("resuming on data that differ from the checkpoint's: %s", ckpt_info["data"])

    # Batches come whole from in-memory tensors: worker processes would only add overhead.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    if ckpt_path is not None:
        # A resumed run writes into its own new directory; Lightning then restarts the ranking of
        # best checkpoints (and says so). _overall_best() still finds an older best epoch.
        warnings.filterwarnings("ignore", message=r"The dirpath has changed from .*")
    trainer = call_checked(
        _instantiate, cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False
    )
    return TrainingPlan(
        cfg=cfg,
        output_dir=output_dir,
        ckpt_path=ckpt_path,
        ckpt_info=ckpt_info,
        seed=seed,
        rank=rank,
        threads=threads,
        do_train=do_train,
        model=model,
        datamodule=datamodule,
        loggers=loggers,
        trainer=trainer,
        resolved=resolved,
    )


def _check_resumed_network(model: Any, stored: dict[str, Any], ckpt_path: Path) -> None:
    """A resumed run must build the network the checkpoint holds (same task, same parameters)."""
    shapes = stored.get("shapes")
    if not shapes:
        return
    built = {str(k): tuple(v.shape) for k, v in model.state_dict().items()}
    if stored.get("task") == model.task.name and built == shapes:
        return

    stored_net = f"a {stored.get('task')} network ({stored.get('preset') or 'custom layers'})"
    built_net = f"a {model.task.name} network ({model.hparams.get('preset') or 'custom layers'})"
    if built_net == stored_net:
        built_net += " with other parameter shapes"
    preset = stored.get("preset")
    fix = f"task={stored.get('task')}" + (f" model.preset={preset}" if preset else "")
    raise UserError(
        f"ckpt_path {str(ckpt_path)!r} holds {stored_net}, but this run builds {built_net}: "
        f"resume with the checkpoint's network ({fix}) or train anew without ckpt_path"
    )


def _check_optimized_metric(name: Any, task: Any) -> None:
    """``optimized_metric`` must be a metric this training computes (or null)."""
    if name is None:
        return
    known = {"train/loss", "val/loss_best"} | {
        f"{split}/{metric}"
        for split in ("val", "test")
        for metric in ("loss", *(m.name for m in task.training_metrics()))
    }
    if name not in known:
        raise UserError(
            f"optimized_metric {name!r} is not computed by task {task.name}; choose one of "
            f"{', '.join(sorted(known))}"
        )


def holds_results(output_dir: Path) -> bool:
    """Whether a run directory holds results of a training (then nothing in it may be removed)."""
    return (
        (output_dir / METRICS_FILE).exists()
        or (output_dir / RESOLVED_CONFIG_FILE).exists()
        or any((output_dir / "checkpoints").glob("*.ckpt"))
    )


def _write_config(plan: TrainingPlan) -> None:
    """``config_resolved.yaml`` and the hyperparameters of every logger (rank 0 writes files)."""
    cfg, resolved = plan.cfg, plan.resolved
    if plan.rank == 0:
        plan.output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(resolved), plan.output_dir / RESOLVED_CONFIG_FILE)
    for lg in plan.loggers:
        lg.log_hyperparams(
            {
                "seed": plan.seed,
                "task": cfg.task.name,
                "model": jsonable(resolved["model"]),
                "data": plan.datamodule.describe(),
                "trainer": jsonable(resolved["trainer"]),
                "n_parameters": plan.model.hparams["n_parameters"],
            }
        )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train (and evaluate) one model as configured; return the final metrics (also in metrics.json).

    Returns a flat dict: metric names (``val/loss``, ``test/loss``, ``val/loss_best``, …, as floats;
    ``val/*`` and ``test/*`` refer to the best checkpoint when ``cfg.test``), plus ``seed``,
    ``epochs``, ``global_step``, ``best_checkpoint``, ``last_checkpoint``, ``diverged`` and
    ``elapsed_s``.

    Raises:
        UserError: invalid input (bad value, missing checkpoint, a run directory holding results,
            a network that does not fit), before any work (:func:`plan_training`).
        DivergedError: the loss became NaN/inf (metrics.json records it first).
    """
    t_start = time.perf_counter()
    plan = plan_training(cfg)  # first: a mistake of the input is reported without heavy imports
    from scalar_ml.training.module import DivergedError

    _write_config(plan)
    trainer, model, datamodule = plan.trainer, plan.model, plan.datamodule
    do_train, ckpt_path = plan.do_train, plan.ckpt_path
    metrics: dict[str, Any] = {}
    info: dict[str, Any] = {
        "seed": plan.seed,
        "task": cfg.task.name,
        "preset": model.hparams.get("preset"),
        "n_parameters": model.hparams["n_parameters"],
        "run_dir": str(plan.output_dir),
        "diverged": False,
    }
    finished = False
    last: Path | None = None
    try:
        if do_train:
            trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
            metrics.update(_flat_metrics(trainer.callback_metrics))
        ckpt_cb = _best_checkpoint_callback(trainer) if do_train else None
        best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
        best = _overall_best(ckpt_cb, best, plan.ckpt_info.get("previous_best"))
        last = _last_checkpoint(trainer) if do_train else None
        # Evaluate the best checkpoint (the current weights when none was written, e.g. fast_dev_run;
        # the given checkpoint with train=false).
        eval_ckpt = best or (None if do_train else ckpt_path)
        if cfg.get("test", True):
            for result in trainer.validate(model=model, datamodule=datamodule, ckpt_path=eval_ckpt):
                metrics.update(_flat_metrics(result))
            for result in trainer.test(model=model, datamodule=datamodule, ckpt_path=eval_ckpt):
                metrics.update(_flat_metrics(result))
        info.update(
            best_checkpoint=best or None,
            last_checkpoint=str(last) if last is not None else None,
            evaluated_checkpoint=str(eval_ckpt) if eval_ckpt else None,
        )
        finished = True
    except DivergedError as exc:
        info.update(diverged=True, error=str(exc))
        log.error("training diverged: %s", exc)
        raise
    finally:
        epochs, global_step = _progress(trainer, last)
        info.update(
            epochs=epochs,
            global_step=global_step,
            elapsed_s=round(time.perf_counter() - t_start, 3),
            cpu_threads=plan.threads,
        )
        result = {**metrics, **info}
        if (finished or info["diverged"]) and plan.rank == 0:
            write_json_atomic(plan.output_dir / METRICS_FILE, result)
        if any(type(lg).__name__ == "WandbLogger" for lg in plan.loggers):
            _finish_wandb()
    log.info("final metrics: %s", metrics)
    return result


def _spec_error_in_chain(exc: BaseException) -> BaseException | None:
    """The :class:`~scalar_ml.models.spec.SpecError` that caused ``exc`` (itself included), if any.

    A network that cannot be built for the training lattice (e.g. a searched point whose kernel is
    larger than the pooled lattice) raises ``SpecError`` before any data are loaded; Hydra may wrap
    it in ``InstantiationException``, so the ``__cause__``/``__context__`` chain is followed.
    """
    from scalar_ml.models.spec import SpecError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, SpecError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def run(cfg: DictConfig) -> float | None:
    """Train; return ``metrics[cfg.optimized_metric]`` (finite: the penalty if diverged; ``None`` if unset).

    With ``cfg.invalid_architecture_penalty`` set (architecture searches), a network that cannot be
    built for the training lattice returns that penalty instead of raising, so that the sampler
    learns to avoid the region rather than ignoring a failed trial.
    """
    penalty = float(cfg.get("divergence_penalty", 1.0e6))
    invalid_penalty = cfg.get("invalid_architecture_penalty")
    try:
        metrics = train(cfg)
    except Exception as exc:
        if not isinstance(exc, UserError):  # (a user's mistake is reported without importing torch)
            from scalar_ml.training.module import DivergedError

            if isinstance(exc, DivergedError):
                log.error("returning the divergence penalty %g as the objective", penalty)
                return penalty
        if invalid_penalty is None:
            raise
        spec_error = _spec_error_in_chain(exc)
        if spec_error is None:
            raise
        log.error("invalid network (%s): returning the penalty %g", spec_error, invalid_penalty)
        return float(invalid_penalty)
    finally:
        _finish_wandb()
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    if name not in metrics:
        available = sorted(k for k, v in metrics.items() if isinstance(v, float))
        raise KeyError(
            f"optimized_metric {name!r} was not computed; available: {', '.join(available)}"
        )
    value = float(metrics[name])
    if not math.isfinite(value):
        log.error("%s is %s: returning the divergence penalty %g", name, value, penalty)
        return penalty
    return value
