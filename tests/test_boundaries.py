"""The plug-in seams hold: only the tasks package names a task; only physics and the tasks name the
theory's parameters and observables. Checked on the code itself (string constants, names and
attributes; docstrings and comments are documentation and may mention them)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import scalar_ml
from scalar_ml.physics.theory import get_theory
from scalar_ml.tasks import task_names

PACKAGE = Path(scalar_ml.__file__).resolve().parent


def _modules(*excluded: str) -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if not any(p.relative_to(PACKAGE).parts[0] == e for e in excluded)
    )


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _words(path: Path, *, strings_only: bool = False) -> Iterator[tuple[int, str]]:
    """``(line, word)`` for every string constant (and, unless ``strings_only``, every name,
    attribute, argument and keyword) of the code."""
    tree = ast.parse(path.read_text())
    docs = _docstring_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value
        elif strings_only:
            continue
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg
        elif isinstance(node, ast.keyword) and node.arg is not None:
            yield node.lineno, node.arg


def _hits(words: set[str], *excluded: str, strings_only: bool = False) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {word!r}"
        for path in _modules(*excluded)
        for line, word in _words(path, strings_only=strings_only)
        if word in words
    ]


def _theory_vocabulary() -> set[str]:
    """The theory's parameter and observable names (``n``, a common variable name, aside)."""
    theory = get_theory()
    return {w for w in (*theory.parameter_names, *theory.observable_names) if len(w) > 1}


def test_only_the_tasks_package_names_a_task() -> None:
    """No task name as a string in code outside scalar_ml/tasks (the words are also ordinary
    identifiers, e.g. a sample's ``observables``, which is not naming the task)."""
    assert _hits(set(task_names()), "tasks", strings_only=True) == []


def test_only_physics_and_the_tasks_name_the_theory() -> None:
    """eta, lam, mu, phi2, phi4: not as strings, variables, attributes or keywords elsewhere."""
    assert _hits(_theory_vocabulary(), "physics", "tasks") == []


def test_the_check_has_power() -> None:
    """Negative control: the same scans find the names where they are allowed."""
    assert _hits(set(task_names()), strings_only=True)  # in the tasks package itself
    assert _hits(_theory_vocabulary())  # in physics


@pytest.mark.parametrize("name", task_names())
def test_every_task_is_complete(name: str) -> None:
    """What the rest of the package asks of a task is there: recipe, grid, presets, metrics."""
    from scalar_ml.models.presets import list_presets
    from scalar_ml.paths import CONF_DIR
    from scalar_ml.tasks import get_task

    task = get_task(name)
    assert (CONF_DIR / "task" / f"{name}.yaml").is_file()
    assert (CONF_DIR / "grid" / f"{task.grid_name}.yaml").is_file()
    assert any(p.startswith(f"{name}/") for p in list_presets())
    assert task.metric_names[0] == "loss" and len(set(task.metric_names)) == len(task.metric_names)
    assert task.targets and task.title and task.figures()
