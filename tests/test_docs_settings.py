"""Every setting of gateway/settings.py is in the one settings table of docs/operations.md, once."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")


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
