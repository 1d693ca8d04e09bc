"""Config values: the one conversion to plain Python and the one set of value checks every layer uses.

Hydra composes the configuration and refuses unknown keys (struct mode); the *values* are checked
here, once, by small functions that name the offending key and what it must be. Every layer that
takes user input (the data modules, grids, the ensemble cache, the sampler, the search space, the
entry points) calls these instead of writing its own range checks, so a bad value reads the same
wherever it is caught. A failure is a :class:`ConfigError` (a ``ValueError``) whose message starts
with the key; the entry points print it as one line (``train.py: error: ...``).

>>> from omegaconf import OmegaConf
>>> to_plain(OmegaConf.create({"lattice": {"nt": 8, "nx": 8}, "worms": [0, 5]}))
{'lattice': {'nt': 8, 'nx': 8}, 'worms': [0, 5]}
>>> to_plain((60, 4))
[60, 4]
>>> integer("data.n_train", 0, minimum=1)
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: data.n_train must be an integer >= 1, got 0
>>> integer("arch.n_conv", 7, minimum=1, maximum=5)
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: arch.n_conv must be an integer in [1, 5], got 7
>>> integer("sampler.n_therm", None, minimum=1, optional=True) is None
True
>>> integer_list("grid.worms", [0, 5, 5], minimum=0)
Traceback (most recent call last):
...
scalar_ml.config.ConfigError: grid.worms must not repeat values, got [0, 5, 5]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = [
    "ConfigError",
    "choice",
    "flag",
    "integer",
    "integer_list",
    "number",
    "number_list",
    "to_plain",
]


class ConfigError(ValueError):
    """A configuration value that is refused before any work starts; the message names the key."""


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


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def integer(
    key: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    optional: bool = False,
    error: type[ValueError] = ConfigError,
) -> Any:
    """``value`` as an ``int`` if it is an integer within the bounds (``None`` passes when ``optional``).

    Booleans are not integers here (``true`` is never a count). Raises ``error`` (a
    :class:`ConfigError` unless the caller needs a subclass of ``ValueError``) naming ``key``.
    """
    if value is None and optional:
        return None
    if (
        not _is_integer(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        what = "null or an integer" if optional else "an integer"
        raise error(f"{key} must be {what}{_bounds(minimum, maximum)}, got {value!r}")
    return int(value)


def number(
    key: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
    error: type[ValueError] = ConfigError,
) -> Any:
    """``value`` as a finite ``float`` within the bounds (``None`` passes when ``optional``)."""
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        what = "null or a finite number" if optional else "a finite number"
        raise error(f"{key} must be {what}{_bounds(minimum, maximum)}, got {value!r}")
    return float(value)


def flag(
    key: str, value: Any, *, optional: bool = False, error: type[ValueError] = ConfigError
) -> Any:
    """``value`` if it is ``True``/``False`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        what = "true, false or null" if optional else "true or false"
        raise error(f"{key} must be {what}, got {value!r}")
    return value


def choice(
    key: str, value: Any, choices: Sequence[Any], *, error: type[ValueError] = ConfigError
) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise error(f"{key} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def _as_list(key: str, value: Any, error: type[ValueError]) -> list[Any]:
    value = to_plain(value)
    if _is_integer(value) or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return [value]
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise error(f"{key} must be a non-empty list, got {value!r}")
    return list(value)


def integer_list(
    key: str,
    value: Any,
    *,
    minimum: int | None = None,
    distinct: bool = True,
    error: type[ValueError] = ConfigError,
) -> list[int]:
    """A non-empty list of integers ``>= minimum`` (a single integer is a one-element list)."""
    values = [
        integer(f"{key}[{i}]", v, minimum=minimum, error=error)
        for i, v in enumerate(_as_list(key, value, error))
    ]
    if distinct and len(set(values)) != len(values):
        raise error(f"{key} must not repeat values, got {values}")
    return values


def number_list(
    key: str, value: Any, *, distinct: bool = True, error: type[ValueError] = ConfigError
) -> list[float]:
    """A non-empty list of finite numbers (a single number is a one-element list)."""
    values = [
        number(f"{key}[{i}]", v, error=error) for i, v in enumerate(_as_list(key, value, error))
    ]
    if distinct and len(set(values)) != len(values):
        raise error(f"{key} must not repeat values, got {values}")
    return values
