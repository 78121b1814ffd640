"""The results table, and ``bench/RESULTS.md``."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.harness import Load

HEADER = ("scenario", "server", "req/s", "p50 ms", "p99 ms", "SQL/req", "ratio")


@dataclass
class Row:
    scenario: str
    title: str
    server: str  # gateway, floor or ceiling
    load: Load | None
    statements: float | None
    note: str = ""
    rounds: list[float] = field(default_factory=list)  # the gateway's ratio in each round


def _ratio(row: Row, rows: list[Row]) -> str:
    if row.server != "gateway" or row.load is None:
        return "1.00 (ref)" if row.load is not None else ""
    reference = next((r for r in rows if r.scenario == row.scenario and r.server != "gateway"
                      and r.load is not None), None)
    if reference is None or not reference.load or not reference.load.rps:
        return ""
    ratio = f"{row.load.rps / reference.load.rps:.2f}x {reference.server}"
    if len(row.rounds) > 1:  # how far the rounds strayed from each other
        ratio += f" ({min(row.rounds):.2f}-{max(row.rounds):.2f})"
    return ratio


def _cells(row: Row, rows: list[Row]) -> tuple[str, ...]:
    if row.load is None:
        return (row.scenario, row.server, row.note, "", "", "", "")
    load = row.load
    flags = f" ({load.errors} errors, {load.non2xx} non-2xx)" if load.errors or load.non2xx else ""
    statements = "" if row.statements is None else f"{row.statements:.2f}"
    return (row.scenario, row.server, f"{load.rps:,.0f}{flags}", f"{load.p50_ms:.1f}",
            f"{load.p99_ms:.1f}", statements, _ratio(row, rows))


def render_table(rows: list[Row]) -> str:
    """A Markdown table (readable as plain text too)."""
    lines = [HEADER, *(_cells(r, rows) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
           for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def machine_info(dsn: str, products: int, reviews: int, load_before: str) -> dict[str, str]:
    async def server_version() -> str:
        connection = await asyncpg.connect(dsn)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "load average": f"{load_before} before the runs, {load_average()} after",
        "python": platform.python_version(),
        "postgresql": asyncio.run(server_version()),
        "data": f"{products:,} products, {reviews:,} reviews",
    }


def write_results(path: Path, command: str, info: dict[str, str], table: str,
                  args: argparse.Namespace) -> None:
    body = [
        "# Benchmark results", "",
        "Written by `./dev bench` (see docs/benchmark.md); each run replaces this file.", "",
        f"Command: `{command}`", "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- load: wrk, {args.connections} connections, {args.threads} threads; per "
        f"scenario {args.warmup:g}s of warm-up for each server, then {args.rounds} "
        f"alternating rounds of {max(1, round(args.duration / args.rounds))}s each", "",
        "The gateway runs under gunicorn with one uvicorn worker and a pool of 10; the floor",
        "and the ceiling under uvicorn (uvloop, httptools); all of them on loopback, on the",
        "same machine as wrk and PostgreSQL. A load average above the CPU count means other",
        "work shared the machine: the numbers are then low and noisy. A ratio is the",
        "gateway's req/s over the reference's, each summed over the rounds, with the",
        "lowest and highest ratio of a single round in brackets; p50 is the rounds' median,",
        "p99 the worst round's.", "",
        table, "",
    ]
    path.write_text("\n".join(body))
