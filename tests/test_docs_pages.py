"""The documentation pages: one settings table with every setting once; links stay inside."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def settings_table() -> list[str]:
    """The variables named in the first column of the table under "## Settings"."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += NAME.findall(line.split("|")[1])
    return names


def test_every_setting_is_documented_once() -> None:
    names = settings_table()
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - set(names) == set(), "settings missing from docs/operations.md"


def test_no_other_page_has_a_settings_table() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    header = re.compile(r"^\| variable \| default \|", re.M)
    tables = {page.name: len(header.findall(page.read_text(encoding="utf-8"))) for page in pages}
    assert tables.pop("operations.md") == 1
    assert not any(tables.values()), tables


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_links_point_to_files_and_headings_of_the_repository() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://127.0.0.1", "https://")):
                continue
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            inside = linked.is_relative_to(ROOT) and linked.exists()
            if not inside or anchor and anchor not in anchors(linked):
                broken.append(f"{page.name}: {target}")
    assert broken == []
