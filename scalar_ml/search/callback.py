"""The Hydra callback of every architecture search (``hydra.callbacks.search_report``).

Hydra calls it in the sweeping process (hydra-optuna-sweeper, basic launcher):

- ``on_multirun_start``, before the sweeper is created: makes the directory of an SQLite storage,
  counts the trials already in the study and adds that count to the sampler seed (with the same
  seed, a resumed study would re-propose its first points), and writes ``search.yaml`` into the
  sweep directory (study, storage, task, family, lattice, base architecture, trials before this
  sweep: what ``python -m scalar_ml.search.retrain`` needs);
- ``on_multirun_end``, after the last trial: writes the report (:mod:`scalar_ml.search.report`).

Hydra turns an exception in a callback into a warning; the sweep's own results are unaffected.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

__all__ = ["SEARCH_FILE", "SearchCallback", "display_storage", "sqlite_path", "study_trial_count"]

log = logging.getLogger(__name__)

#: Written into the sweep directory by :meth:`SearchCallback.on_multirun_start`.
SEARCH_FILE = "search.yaml"


def sqlite_path(storage: str) -> Path | None:
    """The database file of an ``sqlite:///`` URL (``None`` for other URLs or in-memory SQLite)."""
    if not storage.startswith("sqlite:"):
        return None
    from sqlalchemy.engine.url import make_url

    database = make_url(storage).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def display_storage(storage: str) -> str:
    """The storage URL with any password replaced by ``***`` (for logs and files)."""
    from sqlalchemy.engine.url import make_url

    return make_url(storage).render_as_string(hide_password=True)


def study_trial_count(storage: str, study_name: str) -> int:
    """Number of trials stored for ``study_name`` (0 when the study does not exist yet)."""
    import optuna

    for summary in optuna.study.get_all_study_summaries(storage=storage):
        if summary.study_name == study_name:
            return int(summary.n_trials)
    return 0


def _group(config: DictConfig) -> list[str] | None:
    """The searched model's point group (``model.group``; family eqr), as a plain list."""
    group = config.model.get("group")
    return None if group is None else [str(g) for g in group]


class SearchCallback(Callback):
    """Prepares the study storage and the sampler seed; writes the report at the end of the sweep.

    Args:
        top: rows of the top-trials table.
        offset_sampler_seed: add the number of stored trials to ``hydra.sweeper.sampler.seed``.
    """

    def __init__(self, top: int = 10, offset_sampler_seed: bool = True) -> None:
        if top < 1:
            raise ValueError(f"top must be >= 1, got {top}")
        self.top = int(top)
        self.offset_sampler_seed = bool(offset_sampler_seed)
        self.trials_before: int | None = None

    @staticmethod
    def _sweeper(config: DictConfig) -> tuple[str | None, str | None]:
        sweeper = config.hydra.sweeper
        storage = OmegaConf.select(sweeper, "storage")
        study_name = OmegaConf.select(sweeper, "study_name")
        return (None if storage is None else str(storage)), (
            None if study_name is None else str(study_name)
        )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Create the SQLite directory, offset the sampler seed, write ``search.yaml``."""
        storage, study_name = self._sweeper(config)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if storage is None or study_name is None:
            log.warning(
                "hydra.sweeper.storage or study_name is null: the study lives in memory, cannot be "
                "resumed, and no report is written"
            )
            return
        database = sqlite_path(storage)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        self.trials_before = study_trial_count(storage, study_name)
        sampler = config.hydra.sweeper.get("sampler")
        seed = sampler.get("seed") if sampler is not None else None
        if self.offset_sampler_seed and seed is not None and self.trials_before > 0:
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.sweeper.sampler.seed = int(seed) + self.trials_before
            seed = int(seed) + self.trials_before
        log.info(
            "study %s in %s: %d trial(s) stored, %d more to run (sampler seed %s)",
            study_name,
            display_storage(storage),
            self.trials_before,
            int(config.hydra.sweeper.n_trials),
            seed,
        )
        record = {
            "study_name": study_name,
            "storage": display_storage(storage),
            "task": str(config.task.name),
            "family": str(config.model.family),
            "group": _group(config),
            "lattice_size": list(_lattice_shape(config)),
            "arch": OmegaConf.to_container(config.model.arch, resolve=True),
            "divergence_penalty": config.get("divergence_penalty"),
            "sampler_seed": seed,
            "trials_before": self.trials_before,
            "n_trials": int(config.hydra.sweeper.n_trials),
            "overrides": list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False)),
        }
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(record), sweep_dir / SEARCH_FILE)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write ``top_trials.md``, ``trials.csv`` and the PNGs into the sweep directory."""
        import optuna

        from scalar_ml.search.report import TOP_TABLE_FILE, write_report

        storage, study_name = self._sweeper(config)
        if storage is None or study_name is None:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        study = optuna.load_study(study_name=study_name, storage=storage)
        penalty = config.get("divergence_penalty")
        write_report(
            study,
            sweep_dir,
            task=str(config.task.name),
            family=str(config.model.family),
            base_arch=OmegaConf.to_container(config.model.arch, resolve=True),  # type: ignore[arg-type]
            lattice_size=_lattice_shape(config),
            penalty=None if penalty is None else float(penalty),
            top=self.top,
            trials_before=self.trials_before,
            group=_group(config),
        )
        log.info("search report: %s", sweep_dir / TOP_TABLE_FILE)


def _lattice_shape(config: DictConfig) -> tuple[int, ...]:
    """The training lattice's shape (``(nt, nx)`` in 2D) from the composed config."""
    from scalar_ml.physics.params import Lattice

    return Lattice.parse(OmegaConf.to_container(config.lattice, resolve=True)).shape
