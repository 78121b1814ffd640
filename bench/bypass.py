"""``python -m bench.bypass SETTING --database NAME``: one of the gateway's library
bypasses (docs/design/) against the library's own way, on one machine, at once.

Two gateways over one database a ``./dev bench --keep`` run left, ``SETTING=tuned`` and
``SETTING=stock``, are loaded in alternating rounds (tuned first, then stock first, ...)
with the benchmark's varied requests. Each round gives both sides' req/s and the CPU
seconds their worker process spent per request (from ``/proc``): on a shared machine
req/s drifts with everything else running, while the CPU a request costs the gateway
drifts much less. Printed per scenario: each round's figures and the stock/tuned ratio
of each round, with their median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
from pathlib import Path
from statistics import median

import asyncpg

from bench.harness import Processes, free_port, gateway_server, run_wrk
from bench.scenarios import load_catalog, scenarios

TICK = os.sysconf("SC_CLK_TCK")


def worker_cpu(master: int) -> float:
    """CPU seconds (user and system) of the gunicorn master's workers so far."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0.0
    for child in children:
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


async def read_catalog(dsn: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await load_catalog(connection)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bypass", description=__doc__)
    parser.add_argument("setting", help="a tuned|stock setting, such as DB_POOL")
    parser.add_argument("--database", required=True, help="a database ./dev bench --keep left")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", default="catalog,detail,rest-detail")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="of load per side a round")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    head = args.postgres_url.replace("postgresql+asyncpg://", "postgresql://").rpartition("/")[0]
    dsn = f"{head}/{args.database}"
    catalog = asyncio.run(read_catalog(dsn))
    only = args.only.split(",")
    chosen = [s for s in scenarios(catalog) if s.name in only]  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="bench-bypass-") as tmp:
        workdir = Path(tmp)
        processes = Processes(workdir)
        sides: dict[str, tuple[int, str]] = {}
        try:
            for value in ("tuned", "stock"):
                port = free_port()
                (workdir / f"metrics-{value}").mkdir()
                env = {
                    "DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
                    "REDIS_URL": args.redis_url,
                    "ENVIRONMENT": "production",
                    "JWT_SECRET": secrets.token_urlsafe(48),
                    "LOG_FORMAT": "json",
                    "WEB_CONCURRENCY": "1",
                    "GATEWAY_BIND": f"127.0.0.1:{port}",
                    "GATEWAY_WORKERS": "1",
                    "GATEWAY_MAX_REQUESTS": "0",
                    "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{value}"),
                    "DATA_DIR": str(workdir / f"var-{value}"),
                    "TRUSTED_HOSTS": "127.0.0.1,localhost",
                    "RATE_LIMIT_ENABLED": "false",
                    "CACHE_ENABLED": "false",
                    "REDIS_PREFIX": f"bypass{port}:gw",
                    args.setting: value,
                }
                process = processes.start(value, gateway_server(port), env)
                sides[value] = (process.pid, f"http://127.0.0.1:{port}")
                processes.wait_ready(value, sides[value][1], "/health/live")
            for scenario in chosen:
                figures: dict[str, list[tuple[float, float]]] = {"tuned": [], "stock": []}
                for _pid, base in sides.values():  # warm-up
                    run_wrk(
                        base, scenario.gateway, seconds=2, connections=args.connections, threads=2
                    )
                for round_ in range(args.rounds):
                    for value in ("tuned", "stock")[:: 1 if round_ % 2 == 0 else -1]:
                        pid, base = sides[value]
                        before = worker_cpu(pid)
                        load = run_wrk(
                            base,
                            scenario.gateway,
                            seconds=args.seconds,
                            connections=args.connections,
                            threads=2,
                        )
                        spent = worker_cpu(pid) - before
                        figures[value].append((load.rps, 1000 * spent / max(load.requests, 1)))
                for value, rows in figures.items():
                    print(
                        f"{args.setting}={value} {scenario.name}: req/s "
                        f"{[round(rps) for rps, _ in rows]}, CPU ms a request "
                        f"{[round(cpu, 3) for _, cpu in rows]}"
                    )
                rps = [s[0] / t[0] for t, s in zip(figures["tuned"], figures["stock"], strict=True)]
                cpu = [s[1] / t[1] for t, s in zip(figures["tuned"], figures["stock"], strict=True)]
                print(
                    f"{args.setting} {scenario.name}: stock/tuned req/s {median(rps):.2f} "
                    f"({min(rps):.2f}-{max(rps):.2f}), CPU a request {median(cpu):.2f} "
                    f"({min(cpu):.2f}-{max(cpu):.2f}) over {args.rounds} rounds",
                    flush=True,
                )
        finally:
            processes.stop_all()


if __name__ == "__main__":
    main()
