"""Every ``# type: ignore`` in the production packages names its error code and says why
on the same line (`./dev typecheck` runs mypy strict over them; docs/development.md)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "resolvers", "rest", "data")
IGNORE = re.compile(r"type:\s*ignore")
# ``# type: ignore[code, ...]``, then another comment with the reason.
EXPLAINED = re.compile(r"#\s*type:\s*ignore\[[a-z0-9-]+(\s*,\s*[a-z0-9-]+)*\]\s+#\s*\S")


def unexplained(source: str) -> list[tuple[int, str]]:
    """The ``(line, comment)`` of each ignore in ``source`` without a code or a reason."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and IGNORE.search(token.string):
            if not EXPLAINED.search(token.string):
                found.append((token.start[0], token.string))
    return found


def test_every_ignore_in_the_production_packages_says_why() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, comment in unexplained(path.read_text(encoding="utf-8"))
    ]
    assert not bare, "a type: ignore needs its code and, after it, '# <why>':\n" + "\n".join(bare)


def test_an_ignore_without_its_code_or_its_reason_is_found() -> None:
    source = (
        "a = f()  # type: ignore\n"
        "b = f()  # type: ignore[attr-defined]\n"
        "c = f()  # type: ignore[attr-defined]  #\n"
        "d = f()  # type: ignore  # no code\n"
        "e = f()  # type: ignore[arg-type]  # the library annotates int, takes float\n"
        "g = f()  # type: ignore[attr-defined,no-untyped-call]  # unannotated\n"
        "h = 'a string that says # type: ignore is no comment'\n"
    )
    assert [line for line, _ in unexplained(source)] == [1, 2, 3, 4]
