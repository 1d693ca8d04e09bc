"""References resolve: "SPEC §N" names a section of docs/spec.md, docs pages and links exist.

Docstrings, configs and pages cite the reference specification as "SPEC §N"; the specification is
``docs/spec.md``, whose level-2 headings are numbered ``## N. Title``. Code and configs name pages
as ``docs/<page>.md``; Markdown links between the pages (and from the README) point to files that
exist and to headings that exist. (``mkdocs build --strict`` checks the site's links as well; this
runs without the docs extra.)
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from doc_pages import DOCS, README, REPO, documented_pages

SPEC = DOCS / "spec.md"
#: Where references live: the package, configs, tests, benchmarks, the apps, the pages.
SOURCES = [
    *sorted((REPO / "scalar_ml").rglob("*.py")),
    *sorted((REPO / "conf").rglob("*.yaml")),
    *sorted(p for p in (REPO / "tests").rglob("*.py") if p.name != Path(__file__).name),
    *sorted((REPO / "benchmarks").rglob("*.py")),
    REPO / "train.py",
    REPO / "evaluate.py",
    REPO / "mkdocs.yml",
    REPO / "pyproject.toml",
    *documented_pages(),
    DOCS / "results.md",
]
SPEC_REF = re.compile(r"SPEC\s*§\s*(\d+)")
#: A docs page named in the text; ``docs/_*.md`` are the reproduction runner's scratch pages
#: (``--results docs/_x.md``, spliced into results.md, git-ignored), never pages of the site.
DOC_PATH = re.compile(r"\bdocs/(?!_)([\w./-]+?\.md)\b")
LINK = re.compile(r"\]\(([^)\s#]*)(#[^)\s]+)?\)")


def spec_sections() -> set[int]:
    return {int(m) for m in re.findall(r"^## (\d+)\. ", SPEC.read_text(), flags=re.M)}


def slug(heading: str) -> str:
    """The anchor of a heading as Python-Markdown's toc extension (mkdocs) and GitHub make it."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+?)\s*$", text, flags=re.M)}


def test_spec_has_the_numbered_sections() -> None:
    assert spec_sections() == {1, 2, 3, 4, 5, 6}


def test_every_spec_reference_names_a_section() -> None:
    sections, bad = spec_sections(), []
    for path in SOURCES:
        text = path.read_text()
        cited = {int(n) for n in SPEC_REF.findall(text)}
        bad += [f"{path}: SPEC §{n}" for n in sorted(cited - sections)]
        if "SPEC.md" in text:
            bad.append(f"{path} names SPEC.md (it is docs/spec.md)")
    assert not bad, bad


def test_the_code_cites_the_spec() -> None:
    """The references this test resolves are really there (56 when the spec moved in)."""
    count = sum(len(SPEC_REF.findall(p.read_text())) for p in SOURCES if p.suffix == ".py")
    assert count >= 40


def test_named_docs_pages_exist() -> None:
    missing = [
        f"{path}: docs/{m}"
        for path in SOURCES
        for m in DOC_PATH.findall(path.read_text())
        if not (DOCS / m).is_file()
    ]
    assert not missing, missing


def test_markdown_links_resolve() -> None:
    bad = []
    for page in documented_pages():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target, anchor in LINK.findall(text):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path = (page.parent / target).resolve() if target else page
            if not path.exists():
                bad.append(f"{page.name}: link to missing {target}")
            elif anchor and path.suffix == ".md" and anchor[1:] not in anchors(path):
                bad.append(f"{page.name}: no heading {anchor} in {target or page.name}")
    assert not bad, bad


def test_a_broken_reference_is_found(tmp_path: Path) -> None:
    """Negative control: the patterns catch what they are meant to catch."""
    assert SPEC_REF.findall("see SPEC §7 and SPEC§2") == ["7", "2"]
    assert DOC_PATH.findall("docs: docs/training.md, docs/api/x.md.") == ["training.md", "api/x.md"]
    assert LINK.findall("[a](spec.md#2-model) [b](https://x.org) [c](#top)") == [
        ("spec.md", "#2-model"),
        ("https://x.org", ""),
        ("", "#top"),
    ]
    assert slug("2. Model and its dual (flux) representation") == (
        "2-model-and-its-dual-flux-representation"
    )


def test_docstring_rewriting_for_the_site() -> None:
    """docs/griffe_docstrings.py (the API reference's reST-to-Markdown step) does what it says."""
    import doctest
    import importlib.util

    pytest.importorskip("griffe", reason="the docs extra is not installed")
    spec = importlib.util.spec_from_file_location(
        "griffe_docstrings", DOCS / "griffe_docstrings.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.attempted >= 4 and result.failed == 0


def test_readme_links_into_the_docs() -> None:
    text = README.read_text()
    for page in ("install", "tutorial", "training", "evaluation", "results", "spec"):
        assert f"(docs/{page}.md" in text, page
    assert len(text.splitlines()) <= 160  # a screen or two
