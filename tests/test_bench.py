"""The benchmark command runs end to end in a tiny smoke mode (it measures nothing here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL, require_postgres

ROOT = Path(__file__).resolve().parent.parent
VARIED = (
    "catalog",
    "detail",
    "category",
    "catalog-count",
    "category-count",
    "rest-list",
    "rest-detail",
    "rest-category",
)
SCENARIOS = (*VARIED, "cached", "health")
FLOORED = (*VARIED, "health")
SIGNED_IN = ("catalog", "detail", "rest-list", "rest-detail")


def run_bench(*args: str, timeout: float = 480) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            *args,
            "--postgres-url",
            POSTGRES_URL,
            "--redis-url",
            REDIS_URL,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def table_rows(stdout: str) -> dict[tuple[str, str], str]:
    return {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line
        for line in stdout.splitlines()
        if line.startswith("| ")
    }


async def assert_cleaned_up(stdout: str, servers: int) -> None:
    """Its databases are gone, and no server it started is still running."""
    names = re.findall(r"database (bench_\w+)", stdout)
    assert names, stdout
    connection = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""))
    try:
        assert not await connection.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names
        )
    finally:
        await connection.close()
    pids = [int(pid) for pid in re.findall(r"started [\w-]+ \(pid (\d+)\)", stdout)]
    assert len(pids) == servers, stdout
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def require_bench_tools() -> None:
    await require_postgres()
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk)")


@pytest.mark.postgres
async def test_bench_smoke_runs_every_scenario_and_cleans_up(tmp_path: Path) -> None:
    await require_bench_tools()
    results = tmp_path / "RESULTS.md"
    done = run_bench(
        "--scale",
        "50",
        "--duration",
        "2",
        "--rounds",
        "2",
        "--warmup",
        "0",
        "--connections",
        "2",
        "--threads",
        "1",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table_rows(done.stdout)
    for name in SCENARIOS:
        assert (name, "gateway") in rows, done.stdout
    for name in FLOORED:
        assert (name, "floor") in rows, done.stdout
        assert "x floor" in rows[name, "gateway"]
        # Two alternating rounds of a second each: the ratio carries their range.
        assert re.search(r"x floor \(\d+\.\d\d-\d+\.\d\d\)", rows[name, "gateway"])
    for name in VARIED:  # each varied run has its one-argument twin, measured beside it
        assert (f"{name} [one]", "gateway") in rows, done.stdout
        assert (f"{name} [one]", "floor") in rows, done.stdout
        assert re.search(
            rf"^\| {re.escape(name)} +\| [\d,]+ +\| [\d,]+ +\| \d+\.\d\dx",
            done.stdout,
            re.MULTILINE,
        ), done.stdout
    assert done.stdout.count("round 2: floor") == len(FLOORED) + len(VARIED), done.stdout
    # A customer's token and a partner's key read the same pages, in the same rounds,
    # each divided by the anonymous reads.
    for name in SIGNED_IN:
        for variant in (name, f"{name} [one]"):
            for who in ("token", "key"):
                row = rows[f"{variant} [{who}]", "gateway"]
                assert re.search(r"\d+\.\d\dx anonymous \(\d+\.\d\d-\d+\.\d\d\)", row), row
    assert "token" not in rows["category", "gateway"]
    assert done.stdout.count("x anonymous)") == 2 * 2 * len(SIGNED_IN) * 2, done.stdout
    # Varied runs really vary: many requests, and distinct answers among a sample of them.
    for name in ("detail", "rest-detail", "catalog", "rest-list"):
        found = re.search(
            rf"bench:   {name}: ([\d,]+) distinct requests; a sample of (\d+) "
            r"gave (\d+) distinct answers",
            done.stdout,
        )
        assert found, done.stdout
        assert int(found[1].replace(",", "")) > 10
        assert int(found[3]) > 1, found[0]
    # One statement for a REST product (any product), none for the liveness probe.
    assert "| 1.00 " in rows["rest-detail", "gateway"]
    assert "| 1.00 " in rows["rest-detail [one]", "gateway"]
    assert "| 0.00 " in rows["health", "gateway"]
    text = results.read_text()
    assert "Command: `./dev bench --scale 50" in text
    assert "| rest-list " in text
    assert "2 alternating rounds of 1s each" in text
    assert "| detail [token] " in text
    await assert_cleaned_up(done.stdout, servers=4)


@pytest.mark.postgres
async def test_bench_two_scales_print_each_page_at_both(tmp_path: Path) -> None:
    await require_bench_tools()
    results = tmp_path / "RESULTS.md"
    done = run_bench(
        "--scale",
        "60,120",
        "--duration",
        "1",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--connections",
        "2",
        "--threads",
        "1",
        "--arguments",
        "varied",
        "--signed-in",
        "no",
        "--only",
        "detail,catalog-count,category-count",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seeding 60 products" in done.stdout
    assert "seeding 120 products" in done.stdout
    [_, scales] = done.stdout.split("Each page at every scale:")
    rows = table_rows(scales)
    assert re.search(r"\| 60 req/s +\| 120 req/s +\| 120 vs 60 ", scales), scales
    for name in ("detail", "catalog-count", "category-count"):
        for server in ("floor", "gateway"):
            assert re.search(r"\| [\d,]+ +\| [\d,]+ +\| \d+\.\d\dx +\|$", rows[name, server]), rows[
                name, server
            ]
    text = results.read_text()
    assert "## 60 products" in text
    assert "## 120 products" in text
    assert "## Each page at every scale" in text
    await assert_cleaned_up(done.stdout, servers=8)


@pytest.mark.postgres
async def test_bench_mixed_reads_while_orders_and_price_changes_stream_in(tmp_path: Path) -> None:
    await require_bench_tools()
    done = run_bench(
        "--mixed",
        "--scale",
        "80",
        "--duration",
        "1",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--connections",
        "2",
        "--threads",
        "1",
        "--only",
        "detail,rest-detail",
        "--no-record",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table_rows(done.stdout)
    assert "| no writes req/s | hit rate | with writes req/s | hit rate |" in done.stdout
    for page in ("detail", "rest-detail"):
        for writes in ("1 order/s", "5 orders/s", "1 price change/s"):
            cells = [c.strip() for c in rows[page, writes].strip("|").split("|")]
            _page, _writes, base, base_hits, loaded, hits, _p99, kept, target, writes_done = cells
            assert base_hits == "100.0%", cells  # every page asked once before: all hits
            assert re.fullmatch(r"\d+\.\d%", hits), cells
            assert re.fullmatch(r"\d+\.\d\dx", kept), cells
            # Every write succeeded (stocked products, a staff token).
            counted = re.match(r"(\d+)/(\d+) \(", writes_done)
            assert counted, cells
            assert int(counted[1]) >= 1, cells
            assert counted[2] == "0", cells
        assert ">= 0.8x:" in rows[page, "5 orders/s"]
        assert ">= 0.7x:" in rows[page, "1 price change/s"]
    assert "catalog" not in {page for page, _ in rows}
    await assert_cleaned_up(done.stdout, servers=4)
