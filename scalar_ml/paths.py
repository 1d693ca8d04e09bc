"""Project locations and the OmegaConf resolvers that Hydra configs use to find them.

``${scalar_ml.root:}`` resolves to the repository root (where ``conf/`` and ``data/`` live), so the
ensemble cache is shared by every run regardless of the working directory Hydra switches to.
``${scalar_ml.lattice_shape:${lattice}}`` is the lattice group's shape as a list (``[8, 8]`` for
``nt: 8, nx: 8``, ``[8, 8, 8]`` for ``shape: [8, 8, 8]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

PROJECT_ROOT: Path = Path(__file__).resolve().parents[1]
CONF_DIR: Path = PROJECT_ROOT / "conf"


def default_data_dir() -> Path:
    """The ensemble cache directory: ``$SCALAR_ML_DATA_DIR`` if set, else ``<project root>/data``."""
    env = os.environ.get("SCALAR_ML_DATA_DIR")
    return Path(env) if env else PROJECT_ROOT / "data"


def lattice_shape(node: Any) -> list[int]:
    """The shape ``[N_0, …]`` of a lattice config node (``{nt, nx}`` or ``{shape}``), validated."""
    from scalar_ml.physics.params import Lattice

    value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return list(Lattice.parse(value).shape)


def register_resolvers() -> None:
    """Register ``scalar_ml.root``, ``scalar_ml.data_dir``, ``scalar_ml.pid`` and
    ``scalar_ml.lattice_shape`` (idempotent)."""
    if not OmegaConf.has_resolver("scalar_ml.root"):
        OmegaConf.register_new_resolver("scalar_ml.root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("scalar_ml.data_dir"):
        OmegaConf.register_new_resolver("scalar_ml.data_dir", lambda: str(default_data_dir()))
    if not OmegaConf.has_resolver("scalar_ml.pid"):
        OmegaConf.register_new_resolver("scalar_ml.pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("scalar_ml.lattice_shape"):
        OmegaConf.register_new_resolver("scalar_ml.lattice_shape", lattice_shape)
