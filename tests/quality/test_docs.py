"""The docs a newcomer reads stay true to the code: every citation of docs/braze.md names one
of its headings, nothing cites a document outside the repository, and every module path that
docs/architecture.md names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = [*ROOT.glob("importer/**/*.py"), *ROOT.glob("scripts/*.py")]


def _headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in path.read_text().splitlines() if line[:1] == "#"]


def test_every_citation_of_the_braze_facts_names_a_heading() -> None:
    headings = _headings(ROOT / "docs" / "braze.md")
    citations = 0
    for path in CODE:
        text = " ".join(path.read_text().split())  # a citation may wrap over comment lines
        text = text.replace(" # ", " ")
        for cited in re.findall(r"docs/braze\.md, ([^.;:)]+)", text):
            citations += 1
            assert any(cited.startswith(h) for h in headings), f"{path.name}: {cited!r}"
    assert citations >= 10


def test_nothing_cites_a_document_outside_the_repository() -> None:
    for path in CODE:
        text = path.read_text()
        assert "§" not in text and "Braze facts" not in text, path


def test_every_module_the_architecture_page_names_exists() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"importer/[a-z_/]+\.py", page))
    assert len(named) >= 40
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing
    modules = {str(p.relative_to(ROOT)) for p in ROOT.glob("importer/**/*.py")}
    unnamed = sorted(m for m in modules - named if not m.endswith("__init__.py"))
    assert not unnamed, f"docs/architecture.md does not place {unnamed}"
