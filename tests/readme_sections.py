"""The README's sections, so that tests run the commands users read (nothing is documented twice)."""

from __future__ import annotations

from pathlib import Path

README: Path = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(title: str) -> str:
    """The text of the level-2 section ``## <title>`` of README.md (up to the next ``## `` heading).

    Headings inside fenced code blocks are ignored.

    >>> "```bash" in readme_section("Training")
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
