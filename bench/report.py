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
    against: str | None = None  # a signed-in row: the anonymous scenario it is divided by


def _ratio(row: Row, rows: list[Row]) -> str:
    if row.server != "gateway" or row.load is None:
        return "1.00 (ref)" if row.load is not None else ""
    if row.against is not None:
        reference = next(
            (
                r
                for r in rows
                if r.scenario == row.against and r.server == "gateway" and r.load is not None
            ),
            None,
        )
        label = "anonymous"
    else:
        reference = next(
            (
                r
                for r in rows
                if r.scenario == row.scenario and r.server != "gateway" and r.load is not None
            ),
            None,
        )
        label = reference.server if reference is not None else ""
    if reference is None or not reference.load or not reference.load.rps:
        return ""
    ratio = f"{row.load.rps / reference.load.rps:.2f}x {label}"
    if len(row.rounds) > 1:  # how far the rounds strayed from each other
        ratio += f" ({min(row.rounds):.2f}-{max(row.rounds):.2f})"
    return ratio


def _cells(row: Row, rows: list[Row]) -> tuple[str, ...]:
    if row.load is None:
        return (row.scenario, row.server, row.note, "", "", "", "")
    load = row.load
    flags = f" ({load.errors} errors, {load.non2xx} non-2xx)" if load.errors or load.non2xx else ""
    statements = "" if row.statements is None else f"{row.statements:.2f}"
    return (
        row.scenario,
        row.server,
        f"{load.rps:,.0f}{flags}",
        f"{load.p50_ms:.1f}",
        f"{load.p99_ms:.1f}",
        statements,
        _ratio(row, rows),
    )


def markdown(lines: list[tuple[str, ...]]) -> str:
    """A Markdown table of a header and rows (readable as plain text too)."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def render_table(rows: list[Row]) -> str:
    return markdown([HEADER, *(_cells(r, rows) for r in rows)])


def short_scale(scale: int) -> str:
    """10000 -> 10k, 100000 -> 100k, 2500 -> 2.5k, 200 -> 200."""
    if scale >= 1000:
        return f"{scale / 1000:g}k"
    return str(scale)


def render_scales(by_scale: dict[int, list[Row]]) -> str:
    """Each page's req/s at every scale, and the largest scale over the smallest
    (the target: at least 0.8x)."""
    scales = sorted(by_scale)
    low, high = scales[0], scales[-1]
    header = (
        "scenario",
        "server",
        *(f"{short_scale(n)} req/s" for n in scales),
        f"{short_scale(high)} vs {short_scale(low)}",
    )
    lines: list[tuple[str, ...]] = [header]
    for row in by_scale[low]:
        if row.load is None:
            continue
        cells = [row.scenario, row.server]
        found: dict[int, float] = {}
        for n in scales:
            match = next(
                (
                    r
                    for r in by_scale[n]
                    if r.scenario == row.scenario and r.server == row.server and r.load is not None
                ),
                None,
            )
            if match is not None and match.load is not None:
                found[n] = match.load.rps
            cells.append(f"{found[n]:,.0f}" if n in found else "")
        ratio = f"{found[high] / found[low]:.2f}x" if found.get(low) and high in found else ""
        lines.append((*cells, ratio))
    return markdown(lines)


ONE = " [one]"


def render_varied(rows: list[Row]) -> str:
    """Each scenario's varied run beside its one-argument run: req/s of the gateway and
    the floor, and varied over one for each (empty when only one kind ran)."""

    def rps(scenario: str, server: str) -> float | None:
        row = next(
            (
                r
                for r in rows
                if r.scenario == scenario and r.server == server and r.load is not None
            ),
            None,
        )
        return row.load.rps if row is not None and row.load is not None else None

    lines = [
        (
            "scenario",
            "gateway varied",
            "gateway one",
            "varied/one",
            "floor varied",
            "floor one",
            "varied/one",
        )
    ]
    for row in rows:
        if not row.scenario.endswith(ONE) or row.server != "gateway":
            continue
        name = row.scenario.removesuffix(ONE)
        cells = [name]
        for server in ("gateway", "floor"):
            varied, one = rps(name, server), rps(row.scenario, server)
            cells += [
                "" if varied is None else f"{varied:,.0f}",
                "" if one is None else f"{one:,.0f}",
                f"{varied / one:.2f}x" if varied and one else "",
            ]
        lines.append(tuple(cells))
    if len(lines) == 1:
        return ""
    return markdown(lines)


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


def write_results(
    path: Path,
    command: str,
    sections: list[tuple[str, dict[str, str], str]],
    args: argparse.Namespace,
) -> None:
    """``sections``: a heading, the machine's description (or nothing) and a table each."""
    body = [
        "# Benchmark results",
        "",
        "Written by `./dev bench` (see docs/benchmark.md); each run replaces this file.",
        "",
        f"Command: `{command}`",
        "",
        f"- load: wrk, {args.connections} connections, {args.threads} threads; per "
        f"scenario {args.warmup:g}s of warm-up for each server, then {args.rounds} "
        f"alternating rounds of {max(1, round(args.duration / args.rounds))}s each",
        "",
        "The gateway runs under gunicorn with one uvicorn worker and a pool of 10; the floor",
        "and the ceiling under uvicorn (uvloop, httptools); all of them on loopback, on the",
        "same machine as wrk and PostgreSQL. A load average above the CPU count means other",
        "work shared the machine: the numbers are then low and noisy. A ratio is the",
        "gateway's req/s over the reference's, each summed over the rounds, with the",
        "lowest and highest ratio of a single round in brackets; p50 is the rounds' median,",
        "p99 the worst round's. With --mixed, 'kept' is the req/s with writes streaming in",
        "over the req/s without, rounds alternating the same way (docs/benchmark.md).",
        "",
    ]
    for heading, info, table in sections:
        body += [
            f"## {heading}",
            "",
            *(f"- {key}: {value}" for key, value in info.items()),
            *([""] if info else []),
            table,
            "",
        ]
    path.write_text("\n".join(body))
