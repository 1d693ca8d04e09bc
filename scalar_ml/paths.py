"""Where the configs, the logs and the ensemble cache live, and the OmegaConf resolvers that say so.

The configs (``conf/``: Hydra groups, presets, grids, experiments) have one source: the top-level
``conf/`` folder of the repository. The wheel carries the same files as package data,
``scalar_ml/conf/`` (``pyproject.toml`` maps the folder into the package, nothing is copied in the
repository), so :data:`CONF_DIR` is

- ``<checkout>/conf`` when :mod:`scalar_ml` is imported from a source checkout (an editable install,
  ``PYTHONPATH``, or ``python train.py`` run in the checkout), recognised by ``pyproject.toml`` and
  ``conf/train.yaml`` next to the package;
- ``<site-packages>/scalar_ml/conf`` for an installed wheel (``pip install .`` or a wheel built
  for a cluster), from any working directory.

:data:`PROJECT_ROOT` is where runs write by default: ``logs/`` (``paths.log_dir``) and the
ensemble cache ``data/`` (``paths.data_dir``, or ``$SCALAR_ML_DATA_DIR``). It is the checkout in a
source checkout, else the working directory the process started in. ``${scalar_ml.root:}``
resolves to it, so the ensemble cache is shared by every run whatever Hydra's run directory is.
``${scalar_ml.lattice_shape:${lattice}}`` is the lattice group's shape as a list (``[8, 8]`` for
``nt: 8, nx: 8``, ``[8, 8, 8]`` for ``shape: [8, 8, 8]``).

>>> (CONF_DIR / "train.yaml").is_file() and (CONF_DIR / "presets").is_dir()
True
>>> app_command("train")[1:] in (["-m", "scalar_ml.train"], [str(PROJECT_ROOT / "train.py")])
True
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

__all__ = [
    "CONF_DIR",
    "PACKAGE_DIR",
    "PROJECT_ROOT",
    "SOURCE_ROOT",
    "app_command",
    "default_data_dir",
    "register_resolvers",
]

#: The directory of the :mod:`scalar_ml` package.
PACKAGE_DIR: Path = Path(__file__).resolve().parent


def _source_root() -> Path | None:
    """The repository root when the package is imported from a source checkout, else ``None``."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "conf" / "train.yaml").is_file():
        return root
    return None


#: The checkout (``pyproject.toml``, ``conf/``, ``train.py``), or ``None`` for an installed wheel.
SOURCE_ROOT: Path | None = _source_root()
#: The Hydra configs: ``<checkout>/conf`` or the installed package data ``scalar_ml/conf``.
CONF_DIR: Path = SOURCE_ROOT / "conf" if SOURCE_ROOT is not None else PACKAGE_DIR / "conf"
#: Default home of ``logs/`` and ``data/``: the checkout, else the working directory at start.
PROJECT_ROOT: Path = SOURCE_ROOT if SOURCE_ROOT is not None else Path.cwd()

if not (CONF_DIR / "train.yaml").is_file():  # pragma: no cover - a broken installation
    raise ImportError(
        f"scalar_ml's configs are missing ({CONF_DIR / 'train.yaml'} does not exist): the wheel "
        "carries them as package data scalar_ml/conf; reinstall with `pip install .` from a "
        "checkout, or a wheel built by `pip wheel .`"
    )

#: The command-line apps (``python -m scalar_ml.<app>``; console script ``scalar-ml-<app>``).
APPS: tuple[str, ...] = ("train", "evaluate", "sample")


def app_command(app: str) -> list[str]:
    """The argv prefix that starts an app (``"train"``, ``"evaluate"``, ``"sample"``) in a subprocess.

    In a checkout the top-level scripts (``python <checkout>/train.py``, as the docs show them), for
    an installed wheel ``python -m scalar_ml.<app>``; ``sample`` is always a module.
    """
    if app not in APPS:
        raise ValueError(f"unknown app {app!r}; choose one of {', '.join(APPS)}")
    if SOURCE_ROOT is not None and (SOURCE_ROOT / f"{app}.py").is_file():
        return [sys.executable, str(SOURCE_ROOT / f"{app}.py")]
    return [sys.executable, "-m", f"scalar_ml.{app}"]


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
