"""Griffe extension for the API reference: doctest examples in docstrings become ``pycon`` code blocks.

The docstrings of scalar-ml carry doctests in their running text (``>>>`` lines followed by the
expected output, up to a blank line), which Markdown would render as nested block quotes. This
wraps each such block in a fenced ``pycon`` block at its own indentation; nothing else changes.
Loaded by mkdocstrings (``mkdocs.yml``: ``extensions: [docs/griffe_doctests.py]``).

>>> fence_doctests("Text.\\n\\n    >>> 1 + 1\\n    2\\n\\nMore.").splitlines()
['Text.', '', '    ```pycon', '    >>> 1 + 1', '    2', '    ```', '', 'More.']
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every doctest block (``>>>`` up to the next blank line) fenced as ``pycon``."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the doctest blocks of every docstring before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
