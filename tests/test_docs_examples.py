"""Every shell and GraphQL example of README.md and docs/*.md runs against a fresh demo server.

A page's examples run in order in one bash (so ``TOKEN=...`` in one serves the next);
``curl`` fails on an HTTP error unless the block says which status it expects, and a
GraphQL block must answer without errors unless it says which error it shows. Markers
(HTML comments just above a block) are described in docs/development.md.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.serving import serving

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "console"}
RUN = SHELL | {"graphql"}
DOCUMENTED_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")
# Fewer than this many runnable examples means the extraction broke, not that all is well.
MIN_EXAMPLES = 20
MIN_README_EXAMPLES = 4

FENCE = re.compile(
    r"(?P<markers>(?:^<!--\s*example:.*?-->[ \t]*\n)*)"
    r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$",
    re.S | re.M,
)
MARKER = re.compile(r"<!--\s*example:\s*(?P<text>.*?)\s*-->", re.S)
LINE_MARKER = re.compile(r"^<!--\s*example:", re.M)  # as written above a block, not quoted
WHO = ("customer", "staff", "admin")


@dataclass
class Example:
    page: Path
    line: int
    lang: str
    body: str
    skip: str | None = None
    expect_status: str | None = None
    expect_error: str | None = None
    who: str | None = None
    contains: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_marker(example: Example, text: str) -> None:
    if match := re.fullmatch(r"skip:\s*(\S.*)", text, re.S):
        example.skip = match.group(1)
    elif match := re.fullmatch(r"expect (\d{3})", text):
        example.expect_status = match.group(1)
    elif match := re.fullmatch(r"expect error ([A-Z_]+)", text):
        example.expect_error = match.group(1)
    elif match := re.fullmatch(r"as (\w+)", text):
        if match.group(1) not in WHO:
            raise ValueError(f"{example.where}: 'as' takes one of {WHO}")
        example.who = match.group(1)
    elif match := re.fullmatch(r'output contains "([^"]+)"', text):
        example.contains.append(match.group(1))
    else:
        raise ValueError(f"{example.where}: unknown example marker {text!r}")
    shell_only = example.expect_status or example.contains
    if (
        example.lang == "graphql"
        and shell_only
        or example.lang in SHELL
        and (example.who or example.expect_error)
    ):
        raise ValueError(f"{example.where}: marker {text!r} does not apply to {example.lang}")


def extract(page: Path) -> list[Example]:
    """The page's runnable blocks (with their markers), in order; skipped ones included."""
    text = page.read_text(encoding="utf-8")
    examples, attached = [], 0
    for match in FENCE.finditer(text):
        markers = MARKER.findall(match.group("markers"))
        attached += len(markers)
        lang = match.group("lang")
        line = text.count("\n", 0, match.start("lang")) + 1
        example = Example(page, line, lang, match.group("body"))
        if lang not in RUN:
            if markers:
                raise ValueError(f"{example.where}: a marker on a {lang or 'plain'} block")
            continue
        for marker in markers:
            parse_marker(example, marker)
        examples.append(example)
    if attached != len(LINE_MARKER.findall(text)):
        raise ValueError(f"{page.name}: an example marker is not just above a code block")
    return examples


def shell_commands(example: Example) -> str:
    if example.lang != "console":
        return example.body
    commands, continued = [], False
    for line in example.body.splitlines():
        if line.startswith("$ ") or continued:
            commands.append(line[2:] if line.startswith("$ ") and not continued else line)
            continued = line.endswith("\\")
    return "\n".join(commands) + "\n"


# curl fails on any HTTP error status (unless the block expects one), as a reader's would
# with -f; EXPECT_STATUS makes it print the body and check the status instead.
PRELUDE = r"""set -euo pipefail
curl() {
  if [ -n "${EXPECT_STATUS:-}" ]; then
    local out status
    out=$(mktemp)
    status=$(command curl -sS -o "$out" -w '%{http_code}' "$@") ||
      { cat "$out"; rm -f "$out"; return 1; }
    cat "$out"; echo; rm -f "$out"
    if [ "$status" != "$EXPECT_STATUS" ]; then
      echo "docs-test: expected HTTP $EXPECT_STATUS, got $status" >&2; return 1
    fi
  else
    local arg fail=--fail-with-body
    for arg in "$@"; do
      case "$arg" in --fail|--fail-with-body|-f*|-[!-]*f*) fail= ;; esac
    done
    command curl $fail "$@"
  fi
}
"""


def page_script(examples: list[Example], base: str, workdir: Path) -> str:
    parts = [PRELUDE]
    for index, example in enumerate(examples):
        parts.append(f"printf '\\n@@docs-example {example.where}\\n'")
        if example.lang == "graphql":
            document = workdir / f"example-{index}.graphql"
            document.write_text(example.body, encoding="utf-8")
            argv = [sys.executable, str(ROOT / "tests" / "docs_graphql.py"), base, str(document)]
            argv += ["--as", example.who] if example.who else []
            argv += ["--expect-error", example.expect_error] if example.expect_error else []
            parts.append(shlex.join(argv))
        else:
            body = shell_commands(example)
            for origin in DOCUMENTED_ORIGINS:
                body = body.replace(origin, base)
            parts.append(f"EXPECT_STATUS={example.expect_status or ''}")
            parts.append(body.rstrip("\n"))
            parts.append("EXPECT_STATUS=")
        parts.append(f"printf '\\n@@docs-example-done {example.where}\\n'")
    return "\n".join(parts) + "\n"


def runnable(page: Path) -> list[Example]:
    return [example for example in extract(page) if example.skip is None]


def test_the_pages_have_examples_and_every_marker_is_known() -> None:
    counts = {page.name: len(runnable(page)) for page in PAGES}
    assert sum(counts.values()) >= MIN_EXAMPLES, counts
    assert counts["README.md"] >= MIN_README_EXAMPLES, counts
    for page in PAGES:  # a skipped example says why, in the page
        for example in extract(page):
            assert example.skip is None or len(example.skip) > 10, example.where


# Pages with a block in a language that runs (markers are checked in the test, not here).
PAGES_WITH_CODE = [
    page
    for page in PAGES
    if re.search(r"^```(?:sh|bash|console|graphql)\b", page.read_text(encoding="utf-8"), re.M)
]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda page: page.name)
def test_examples_run_against_a_fresh_demo_server(page: Path, tmp_path: Path) -> None:
    examples = runnable(page)
    if not examples:
        pytest.skip(f"{page.name} has no example to run")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with serving(["serve"], tmp_path, env={}) as served:
        script = page_script(examples, served.url, workdir)
        # python3 in the examples is the suite's own (any Python 3 would do).
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        env = {**os.environ, "PATH": path}
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = done.stdout
    started = re.findall(r"^@@docs-example (\S+)$", output, re.M)
    finished = re.findall(r"^@@docs-example-done (\S+)$", output, re.M)
    failed = started[-1] if started and len(finished) < len(started) else "(before any example)"
    report = f"{output[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"the example at {failed} failed:\n{report}"
    assert finished == [example.where for example in examples], report
    for example in examples:
        for text in example.contains:
            assert text in output, f"{example.where}: the output lacks {text!r}:\n{report}"
