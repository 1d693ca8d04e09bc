"""How the command-line apps report a user's mistake: one line, a non-zero exit, nothing half-written.

``train.py``, ``evaluate.py`` and ``python -m scalar_ml.sample`` (and their console scripts
``scalar-ml-train``, ``scalar-ml-evaluate``, ``scalar-ml-sample``) check everything they are given
before any work, in two steps:

1. **The command line**, before Hydra starts (:func:`hydra_app`, :func:`composition_error`): the
   overrides are parsed and the config is composed once, as Hydra will compose it (in a multirun
   with the first value of each sweep). Hydra's own report of a mistake here spans several lines
   and exits 1; it becomes one line naming the key and the fix, exit status 2, and no run directory
   has been created yet::

       train.py: error: unknown config key 'data.n_trian'; did you mean data.n_train?
       train.py: error: lattice.nt=abc: 'abc' is not an integer
       train.py: error: task=countin: no such option of task; did you mean task=counting? (options: counting, detection, localisation, observables)

   Unknown keys (also ``+key=...`` additions at the top level, which nothing would read), wrong
   types (:mod:`scalar_ml.schemas`), unknown options of a config group, unparsable overrides and
   required values left unset (``???``) are found here.
2. **The values**, inside the job: the validated objects raise
   :class:`~scalar_ml.config.ConfigError`, a missing checkpoint or a network that does not fit the
   lattice a :class:`UserError`. :func:`report_user_errors` turns such an error into::

       train.py: error: data.n_train must be an integer >= 1, got 0

   on stderr with exit status 2 and removes what Hydra wrote into the job's run directory (its
   ``.hydra/*.yaml`` and log file; a directory that held anything else is left alone).

No traceback is printed unless ``HYDRA_FULL_ERROR=1`` (then step 1 is skipped and Hydra reports
as it does by itself). Errors during the work itself are bugs or failures of the machine, not of
the input: they keep their traceback. In a multirun (``-m``) an error of step 2 is re-raised, so
that the sweeper records a failed job and goes on instead of the whole sweep exiting.

>>> composition_error("train", ["data.n_trian=100"])
"unknown config key 'data.n_trian'; did you mean data.n_train?"
>>> composition_error("train", ["-m", "seed=0,1", "trainer.max_epochs=2"]) is None
True
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

__all__ = [
    "UserError",
    "composition_error",
    "discard_run_dir",
    "hydra_app",
    "one_line",
    "program_name",
    "report_user_errors",
]


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
        print(f"{program_name(prog)}: error: {one_line(str(exc))}", file=sys.stderr, flush=True)
        sys.exit(2)


def program_name(default: str) -> str:
    """How the user started the app: the console script's name (``scalar-ml-train``), else ``default``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("scalar-ml-") else default


def one_line(message: str) -> str:
    """The first line of ``message`` (the rest is shown with ``HYDRA_FULL_ERROR=1``).

    >>> one_line("bad value\\n  details\\n")
    'bad value (more with HYDRA_FULL_ERROR=1)'
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return message.strip()
    return lines[0] if len(lines) == 1 else f"{lines[0]} (more with HYDRA_FULL_ERROR=1)"


def as_user_error(exc: BaseException, what: str = "") -> UserError:
    """A :class:`UserError` carrying ``exc``'s message (prefixed by ``what``), chained to it.

    The prefix is left out when the message already starts with it (``"ckpt_path '...' does not
    exist"`` stays as it is).
    """
    message = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
    prefixed = what and not message.startswith(what)
    error = UserError(f"{what}: {message}" if prefixed else message)
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


# --------------------------------------------------------------------------- the command line
#: Hydra flags after which the command line is left to Hydra alone (help, completion, other configs).
_HYDRA_OWN = (
    "help",
    "hydra_help",
    "version",
    "shell_completion",
    "info",
    "experimental_rerun",
    "config_path",
    "config_dir",
    "config_name",
)
#: How OmegaConf names the types it could not convert a value to.
_TYPE_NAMES = {
    "Integer": "an integer",
    "Float": "a number",
    "Boolean": "true or false",
    "String": "a string",
}


def _close(word: str, choices: list[str], cutoff: float = 0.6) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return matches[0] if matches else None


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a plain (unresolved) container, parents included."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            full = f"{prefix}{key}"
            out.append(full)
            out.extend(_flat_keys(value, f"{full}."))
    return out


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is the mandatory marker ``???`` (no interpolation is resolved)."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if value == "???":
                out.append(f"{prefix}{key}")
            else:
                out.extend(_missing_keys(value, f"{prefix}{key}."))
    return out


def _compose(config_name: str, overrides: list[str]) -> Any:
    """``conf/<config_name>.yaml`` composed with ``overrides`` (as ``@hydra.main`` composes it)."""
    from hydra import compose, initialize_config_dir

    from scalar_ml.paths import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def _plain(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(out, dict)
    return out


def _is_group(name: str) -> bool:
    """Whether ``name`` (``task``, ``hydra/launcher``) is a config group rather than a key."""
    from hydra.core.config_store import ConfigStore

    from scalar_ml.paths import CONF_DIR

    head = name.split("/")[0]
    return "/" in name or (CONF_DIR / name).is_dir() or head in ConfigStore.instance().repo


def _unknown_key(config_name: str, key: str, others: list[str]) -> str:
    """``unknown config key 'a.b'`` with the closest existing key, or what the parent holds."""
    from scalar_ml.paths import CONF_DIR

    message = f"unknown config key {key!r}"
    try:
        known = _plain(_compose(config_name, others))
    except Exception:  # the other overrides fail too: the first error is reported anyway
        return message
    known.pop("hydra", None)
    parts = key.split(".")
    parent, node, depth = "", known, 0
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            break
        parent, node, depth = f"{parent}{part}.", node[part], depth + 1
    missing = parts[depth]
    if depth == len(parts) - 1 and isinstance(node, dict):  # only the last part is unknown
        sibling = _close(missing, [str(k) for k in node])
        if sibling is not None:
            return f"{message}; did you mean {parent}{sibling}?"
    group = parent[:-1].replace(".", "/")
    if group and (CONF_DIR / group / f"{missing}.yaml").is_file():
        return (
            f"{message}: {missing!r} is an option of the config group {group} that is not "
            f"selected; select it first ({group}={missing}, or a list such as "
            f"'{group}=[default,{missing}]')"
        )
    match = _close(key, _flat_keys(known), cutoff=0.75)
    if match is not None:
        return f"{message}; did you mean {match}?"
    if isinstance(node, dict) and node:
        where = f"{parent[:-1]} has" if parent else f"{config_name}.yaml has the top-level keys"
        names = sorted(map(str, node))
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        return f"{message} ({where}: {shown})"
    return message


def _describe(config_name: str, exc: BaseException, override: str | None, others: list[str]) -> str:
    """One line for an error Hydra raised while composing (``override``: the one that caused it)."""
    import re

    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    text = str(exc)
    cause = exc.__cause__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        options = [o for o in (exc.options or []) if o != "schema"]
        if group and options:
            what = f"{group}={name}" if override is None else override.lstrip("+~")
            hint = _close(name, options)
            did = f"; did you mean {group}={hint}?" if hint else ""
            return f"{what}: no such option of {group}{did} (options: {', '.join(options)})"
        return one_line(text)
    failed = re.match(r"Could not override '([^']+)'", text)
    if failed and isinstance(cause, ConfigKeyError | ConfigAttributeError):
        return _unknown_key(config_name, failed.group(1), others)
    if isinstance(cause, ValidationError):
        key = getattr(cause, "full_key", None) or (override or "").split("=", 1)[0]
        first = one_line(str(cause)).replace(" (more with HYDRA_FULL_ERROR=1)", "")
        converted = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", first)
        if converted and converted.group(2) in _TYPE_NAMES:
            value, kind = converted.group(1), _TYPE_NAMES[converted.group(2)]
            return f"{key}={value}: {value!r} is not {kind}"
        return f"{key}: {first}"
    if text.startswith("Could not append to config"):
        key = (override or "").split("=", 1)[0].lstrip("+")
        return f"{one_line(text)} (to change {key!r}, drop the +)"
    return one_line(text)


def composition_error(config_name: str, argv: list[str]) -> str | None:
    """The one-line report of a command line Hydra would refuse, or ``None`` if it composes.

    ``argv``: the app's arguments (overrides and Hydra flags such as ``-m``). The config
    ``conf/<config_name>.yaml`` is composed as ``@hydra.main`` composes it; in a multirun each sweep
    contributes its first value (interval sweeps of Optuna, which have none, are left out). Besides
    Hydra's own errors this refuses ``+key=...``/``++key=...`` adding a top-level key (nothing would
    read it) and required values left unset (``???``).
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = get_args_parser()
    parser.exit_on_error = False

    def _refuse(message: str) -> None:
        raise ValueError(message)

    parser.error = _refuse  # type: ignore[method-assign]
    try:
        args = parser.parse_args(argv)
    except (ValueError, SystemExit):
        return None  # not an override problem: Hydra prints its usage itself
    if any(getattr(args, flag, None) for flag in _HYDRA_OWN):
        return None
    overrides: list[str] = list(args.overrides)
    parsing = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.extend(parsing.parse_overrides([text]))
        except OverrideParseException as exc:
            reason = one_line(exc.message).replace(" (more with HYDRA_FULL_ERROR=1)", "")
            return (
                f"cannot parse the override {text!r}: {reason} (quote values with spaces or "
                "brackets for the shell: 'key=[a, b]'; grammar: "
                "https://hydra.cc/docs/advanced/override_grammar/basic/)"
            )
    plain: list[str] = []  # the overrides of one job (sweeps: their first value)
    for override, text in zip(parsed, overrides, strict=True):
        if override.is_sweep_override():
            if override.is_interval_sweep():
                continue
            try:
                first = next(iter(override.sweep_string_iterator()))
            except (StopIteration, TypeError, ValueError):
                continue
            plain.append(f"{override.get_key_element()}={first}")
        else:
            plain.append(text)
    try:
        cfg = _plain(_compose(config_name, plain))
    except Exception as exc:
        culprit = _culprit(exc, plain)
        others = [t for t in plain if t != culprit]
        return _describe(config_name, exc, culprit, others)
    cfg.pop("hydra", None)
    adds = [t for t in plain if t.startswith("+") and "." not in _key(t) and not _is_group(_key(t))]
    if adds:  # a key added at the top level: is it one the config already has?
        base = _plain(_compose(config_name, [t for t in plain if t not in adds]))
        for text in adds:
            if _key(text) not in base:
                others = [t for t in plain if t != text]
                message = _unknown_key(config_name, _key(text), others)
                return f"{message}; nothing reads a new top-level key"
    missing = _missing_keys(cfg)
    if missing:
        return f"{missing[0]} is required: give {missing[0]}=... on the command line"
    return None


def _key(override: str) -> str:
    """``+a.b=1`` -> ``a.b``; ``physics@data.points.b=x`` -> ``physics``."""
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def _culprit(exc: BaseException, overrides: list[str]) -> str | None:
    """The override that made composition fail, as far as Hydra's message names it."""
    import re

    from hydra.errors import MissingConfigException

    text = str(exc)
    named = re.match(
        r"(?:Could not override|Could not delete from config\.|Could not append)", text
    )
    key_match = re.search(r"'([^']+)'", text)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group = exc.missing_cfg_file.rpartition("/")[0]
        for text_ in overrides:
            if _key(text_) == group:
                return text_
        return None
    merging = re.match(r"Error merging override (.+)$", text.splitlines()[0] if text else "")
    if merging:
        return merging.group(1) if merging.group(1) in overrides else None
    if named and key_match:
        for text_ in overrides:
            if _key(text_) == key_match.group(1):
                return text_
    return None


def check_command_line(config_name: str, prog: str, argv: list[str]) -> None:
    """Exit with ``<prog>: error: ...`` (status 2) if Hydra would refuse ``argv``; else return.

    Skipped with ``HYDRA_FULL_ERROR=1``: Hydra then reports the error itself, with its traceback.
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    message = composition_error(config_name, argv)
    if message is not None:
        print(f"{program_name(prog)}: error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)


def hydra_app(config_name: str, prog: str) -> Callable[[Callable[[Any], Any]], Callable[[], Any]]:
    """``@hydra.main`` on ``conf/<config_name>.yaml`` (:data:`scalar_ml.paths.CONF_DIR`), checked first.

    The decorated function becomes the app's ``main()`` (the console script and the top-level
    scripts call it): it checks the command line with :func:`check_command_line`, then runs Hydra.
    ``prog`` names the app in error messages (``train.py``, ``evaluate.py``, ``scalar_ml.sample``).
    """
    import functools

    import hydra

    from scalar_ml.paths import CONF_DIR

    def decorate(task_function: Callable[[Any], Any]) -> Callable[[], Any]:
        hydra_main = hydra.main(
            version_base="1.3", config_path=str(CONF_DIR), config_name=config_name
        )(task_function)

        @functools.wraps(task_function)
        def main() -> Any:
            check_command_line(config_name, prog, sys.argv[1:])
            return hydra_main()

        return main

    return decorate
