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
SCENARIOS = ("catalog", "detail", "category", "rest-list", "rest-detail", "rest-category",
             "cached", "health")
FLOORED = ("catalog", "detail", "category", "rest-list", "rest-detail", "rest-category", "health")
VARIED = ("catalog", "detail", "category", "rest-list", "rest-detail", "rest-category")


@pytest.mark.postgres
async def test_bench_smoke_runs_every_scenario_and_cleans_up(tmp_path: Path) -> None:
    await require_postgres()
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk)")
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "50", "--duration", "2", "--rounds", "2",
         "--warmup", "0",
         "--connections", "2", "--threads", "1", "--results", str(results),
         "--postgres-url", POSTGRES_URL, "--redis-url", REDIS_URL],
        cwd=ROOT, capture_output=True, text=True, timeout=480, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line
            for line in done.stdout.splitlines() if line.startswith("| ")}
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
        assert re.search(rf"^\| {re.escape(name)} +\| [\d,]+ +\| [\d,]+ +\| \d+\.\d\dx",
                         done.stdout, re.MULTILINE), done.stdout
    assert done.stdout.count("round 2: floor") == len(FLOORED) + len(VARIED), done.stdout
    # Varied runs really vary: many requests, and distinct answers among a sample of them.
    for name in ("detail", "rest-detail", "catalog", "rest-list"):
        found = re.search(rf"bench:   {name}: ([\d,]+) distinct requests; a sample of (\d+) "
                          r"gave (\d+) distinct answers", done.stdout)
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

    # Its database is gone, and no server it started is still listening.
    [name] = re.findall(r"database (bench_\w+)", done.stdout)
    connection = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""))
    try:
        assert not await connection.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", name)
    finally:
        await connection.close()
    pids = [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", done.stdout)]
    assert len(pids) == 3, done.stdout
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
