"""Griffe extension for the API reference: the docstrings' reST idioms as Markdown.

The docstrings of scalar-ml are written for reading in the source and for ``help()``: doctests in
the running text, Sphinx roles (``:func:`name```, ``:math:`x```) and ``.. math::`` blocks. Markdown
would show the doctests as nested block quotes and the roles verbatim. Before griffe parses a
docstring this rewrites, and changes nothing else:

- a doctest block (``>>>`` up to the next blank line) -> a fenced ``pycon`` block;
- ``.. math::`` and its indented body -> a fenced ``tex`` block;
- ``:role:`target``` -> ```target``` (``~a.b.c`` -> ```c```; ``text <target>`` -> ```text```);
- a paragraph ending in ``::`` (a reST literal block follows) -> ending in ``:``.

Loaded by mkdocstrings (``mkdocs.yml``: ``extensions: [docs/griffe_docstrings.py:ReSTAsMarkdown]``).

>>> to_markdown("Text.\\n\\n    >>> 1 + 1\\n    2\\n\\nMore.").splitlines()
['Text.', '', '    ```pycon', '    >>> 1 + 1', '    2', '    ```', '', 'More.']
>>> to_markdown("See :func:`~scalar_ml.physics.generate_ensemble` and :math:`\\\\eta > 0`.")
'See `generate_ensemble` and `\\\\eta > 0`.'
>>> to_markdown("A sum::\\n\\n    x = 1").splitlines()
['A sum:', '', '    x = 1']
>>> to_markdown(".. math::\\n\\n    a^2\\n\\nText").splitlines()
['```tex', 'a^2', '```', '', 'Text']
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj|math|ref):`([^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    shown = re.match(r"(.*?)\s*<[^>]+>$", target)  # `text <target>`
    if shown:
        target = shown.group(1)
    elif target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def to_markdown(text: str) -> str:
    """``text`` with the reST idioms listed in the module docstring rewritten as Markdown."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(">>>"):
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        if stripped.rstrip() == ".. math::":
            i += 1
            body: list[str] = []
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
            ):
                body.append(lines[i])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            math = textwrap.dedent("\n".join(body)).strip("\n")
            out += [f"{indent}```tex", *(f"{indent}{m}" for m in math.splitlines()), f"{indent}```"]
            if i < len(lines):
                out.append("")
            continue
        line = ROLE.sub(_role, line)
        if line.rstrip().endswith("::") and not line.rstrip().endswith(" ::"):
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


class ReSTAsMarkdown(griffe.Extension):
    """Rewrite every docstring with :func:`to_markdown` before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
