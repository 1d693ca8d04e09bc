"""The documentation's pages and their commands, so that tests run the commands users read.

Nothing is documented twice: ``README.md`` and the pages of ``docs/`` hold the commands, and the
tests read them from there. ``tests/test_doc_commands.py`` checks that every command of every
``bash`` block is run or composed by some test, unless its line says ``# not run by tests: why``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

REPO: Path = Path(__file__).resolve().parents[1]
README: Path = REPO / "README.md"
DOCS: Path = REPO / "docs"
#: Marks a documented command that no test runs (with the reason after the colon).
SKIP_MARK = "# not run by tests"
#: Pages written by a program, whose commands are a record of what it ran.
GENERATED = ("results.md",)


def doc_page(name: str) -> str:
    """The text of ``docs/<name>.md`` (``name`` without ``.md``), or of ``README.md`` for "README".

    >>> "```bash" in doc_page("training")
    True
    """
    path = README if name == "README" else DOCS / f"{name}.md"
    return path.read_text()


def documented_pages() -> list[Path]:
    """README.md and every hand-written page under docs/ (generated pages left out)."""
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    return [p for p in pages if p.name not in GENERATED]


def fenced_blocks(text: str, lang: str) -> list[list[str]]:
    """The non-blank lines of every ```<lang> block (continuation-free, as the docs are written)."""
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and line.strip() == f"```{lang}":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append(current)
            current = None
        elif current is not None and line.strip():
            current.append(line.rstrip())
    assert current is None, f"unterminated ```{lang} block"
    return blocks


def bash_blocks(text: str) -> list[list[str]]:
    """The lines of every ```bash block."""
    return fenced_blocks(text, "bash")


def strip_comment(line: str) -> str:
    """A shell line without its trailing ``# comment``."""
    return re.sub(r"\s+#\s.*$", "", line)


def runnable_blocks(text: str) -> list[list[str]]:
    """The ```bash blocks without the lines marked :data:`SKIP_MARK`, comments stripped."""
    return [[strip_comment(line) for line in b if SKIP_MARK not in line] for b in bash_blocks(text)]


def readme_section(title: str) -> str:
    """The text of the level-2 section ``## <title>`` of README.md (up to the next ``## `` heading).

    Headings inside fenced code blocks are ignored.

    >>> "python train.py" in readme_section("Commands")
    True
    """
    lines = README.read_text().splitlines()
    out: list[str] | None = None
    in_code = False
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("## "):
            if out is not None:
                break
            if line[3:].strip() == title:
                out = []
                continue
        if out is not None:
            out.append(line)
    if out is None:
        raise KeyError(f"README.md has no section '## {title}'")
    return "\n".join(out) + "\n"


def run_scripts(scripts: list[str], env: Mapping[str, str], timeout: float) -> None:
    """Run each bash script (a documented block prepared for tiny data) from the repository root,
    in order; ``AssertionError`` with the script and its stderr at the first that fails."""
    for i, script in enumerate(scripts):
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, (
            f"block {i} failed:\n{script}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
