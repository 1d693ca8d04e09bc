"""Config values as plain Python: the one conversion every layer uses on Hydra/OmegaConf input.

>>> from omegaconf import OmegaConf
>>> to_plain(OmegaConf.create({"lattice": {"nt": 8, "nx": 8}, "worms": [0, 5]}))
{'lattice': {'nt': 8, 'nx': 8}, 'worms': [0, 5]}
>>> to_plain((60, 4))
[60, 4]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["to_plain"]


def to_plain(obj: Any) -> Any:
    """OmegaConf containers (resolved) and other mappings/sequences -> plain dicts and lists.

    Anything else (numbers, strings, dataclasses such as ``Lattice``) is returned unchanged.
    """
    if isinstance(obj, DictConfig | ListConfig):
        return OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, Mapping):
        return {key: to_plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(value) for value in obj]
    return obj
