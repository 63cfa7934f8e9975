"""docs/decisions/: each record has its four sections and a line in the index, and every record the
code or the docs name exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DECISIONS = ROOT / "docs" / "decisions"
SECTIONS = ["## Context", "## Decision", "## Consequences", "## Evidence"]


def records() -> list[Path]:
    return sorted(DECISIONS.glob("[0-9][0-9][0-9][0-9]-*.md"))


def test_records_are_numbered_in_order_with_the_four_sections_and_indexed():
    index = (DECISIONS / "README.md").read_text(encoding="utf-8")
    assert [int(p.name[:4]) for p in records()] == list(range(1, len(records()) + 1))
    for path in records():
        text = path.read_text(encoding="utf-8")
        assert text.startswith(f"# {int(path.name[:4])}. "), path.name
        assert [line for line in text.splitlines() if line.startswith("## ")] == SECTIONS, path.name
        assert f"({path.name})" in index, f"{path.name} is not in docs/decisions/README.md"


def test_every_record_named_in_the_code_and_docs_exists():
    named = set()
    for path in [*ROOT.glob("streams/**/*.py"), *ROOT.glob("docs/**/*.md"), ROOT / "README.md"]:
        named |= set(re.findall(r"decisions/([0-9]{4}-[a-z0-9-]+\.md)", path.read_text(encoding="utf-8")))
    assert named and named <= {p.name for p in records()}, named - {p.name for p in records()}
