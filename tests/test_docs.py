"""The README stays a guide: short, with the setup and test commands CI runs, and every link in
the docs leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_a_guide_of_at_most_300_lines() -> None:
    # Rule: dated figures live in docs/benchmarks/, not in the front page.
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_readme_holds_the_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    # Rule: CI runs the README's setup command and its test command, word for word.
    for command in ('pip install -e ".[dev,postgres,mysql]"', "python -m pytest"):
        assert command in readme and f"\n{command}\n" in ci


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    # Rule: a link in the guide or the docs names a file that exists.
    assert broken == []
