"""``./dev bench``: seed, start, load, report. Every process it starts is ended on exit."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlencode

import asyncpg
import redis

from bench.harness import (
    ROOT,
    Load,
    Processes,
    counters,
    fetch,
    free_port,
    gateway_server,
    python_server,
    run_wrk,
    wrk_path,
)
from bench.mixed import MIXED_PAGES, run_mixed, stock_up
from bench.principals import Principals, create_users, sign_in
from bench.report import (
    Row,
    load_average,
    machine_info,
    render_scales,
    render_table,
    render_varied,
    write_results,
)
from bench.scenarios import (
    NAMES,
    SIGNED_IN,
    VARIES,
    Catalog,
    Request,
    Scenario,
    as_principal,
    load_catalog,
    scenarios,
)

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    parser.add_argument(
        "--scale",
        default="10000",
        help="products (default 10000); several, comma-separated "
        "(10000,100000), run each in turn and print each page at every scale",
    )
    parser.add_argument(
        "--max-reviews",
        type=int,
        default=10,
        help="reviews per product, 0 to this (default 10: ~5 a product)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=12,
        help="seconds of load per server and scenario, over all rounds (default 12)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="alternating rounds of the reference and the gateway per scenario (default 4)",
    )
    parser.add_argument(
        "--warmup", type=float, default=2, help="seconds of warm-up per server and scenario"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--arguments",
        choices=("both", "varied", "one"),
        default="both",
        help="varied: arguments drawn over the whole catalog (what counts); "
        "one: a single request per scenario again and again (the best case); "
        "both (default): each varied run, then its one-argument twin",
    )
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated scenarios of: {', '.join(NAMES)} "
        f"(with --mixed: of {', '.join(MIXED_PAGES)})",
    )
    parser.add_argument(
        "--signed-in",
        choices=("yes", "no"),
        default="yes",
        help="also read " + ", ".join(SIGNED_IN) + " with a customer's "
        "token and a partner's API key, beside the anonymous reads",
    )
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="instead of the scenarios: cached reads while writes stream "
        "in (orders, staff price changes): req/s, hit rate and 'kept'",
    )
    parser.add_argument(
        "--order-rates",
        default="1,5",
        help="with --mixed: orders per second, one run each (default 1,5)",
    )
    parser.add_argument(
        "--price-rates",
        default="1",
        help="with --mixed: staff price changes per second (default 1)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", os.environ.get("GATEWAY_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
        ),
        help="a server and a database to connect to for CREATE DATABASE",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(
            "BENCH_REDIS_URL", os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        ),
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the gateway (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="reuse a database a --keep run left (no seeding, never dropped)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "bench" / "RESULTS.md",
        help="where to record the results (default bench/RESULTS.md)",
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        args.scales = [int(n) for n in args.scale.split(",") if n.strip()]
        args.order_rates = [float(n) for n in args.order_rates.split(",") if n.strip()]
        args.price_rates = [float(n) for n in args.price_rates.split(",") if n.strip()]
    except ValueError:
        parser.error("--scale, --order-rates and --price-rates take comma-separated numbers")
    if not args.scales or min(args.scales) < 1:
        parser.error("--scale needs at least one positive number")
    if args.database and len(args.scales) > 1:
        parser.error("--database reuses one database: give one --scale")
    known = MIXED_PAGES if args.mixed else NAMES
    if args.only is None:
        args.only = ",".join(known)
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(args.only) - set(known)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    head, _, tail = plain_dsn(url).rpartition("/")
    query = "?" + tail.partition("?")[2] if "?" in tail else ""
    return f"{head}/{name}{query}"


async def admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def read_catalog(dsn: str) -> tuple[Catalog, int, int]:
    """The arguments' rows, and the product and review counts."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("ANALYZE")
        return (
            await load_catalog(connection),
            await connection.fetchval("SELECT count(*) FROM products"),
            await connection.fetchval("SELECT count(*) FROM reviews"),
        )
    finally:
        await connection.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind through the finally blocks that stop the servers


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.processes = Processes(workdir)
        self.workdir = workdir
        # Two gateways: one with the response cache off (what the uncached scenarios
        # measure) and one with it on (the cached page).
        self.gateway = self.cached = self.floor = self.ceiling = ""
        self.principals: Principals | None = None
        self.product_ids: list[int] = []  # what staff change prices of (--mixed)

    def start(self, dsn: str, db_url: str, redis_key: str) -> None:
        ports = [free_port() for _ in range(4)]
        self.gateway, self.floor, self.ceiling, self.cached = (
            f"http://127.0.0.1:{p}" for p in ports
        )
        metrics_dir = self.workdir / "metrics"
        metrics_dir.mkdir()
        (self.workdir / "metrics-cached").mkdir()
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": self.args.redis_url,
            "ENVIRONMENT": "production",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "DB_POOL_SIZE": "10",
            "LOG_FORMAT": "json",
            "WEB_CONCURRENCY": "1",
            "GATEWAY_BIND": f"127.0.0.1:{ports[0]}",
            "GATEWAY_WORKERS": "1",
            "GATEWAY_MAX_REQUESTS": "0",  # no worker recycling in the middle of a run
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "DATA_DIR": str(self.workdir / "var"),
            # Production needs its host names; the load generator must not be throttled;
            # this run's Redis keys are its own.
            "TRUSTED_HOSTS": "127.0.0.1,localhost",
            "RATE_LIMIT_ENABLED": "false",
            "REDIS_PREFIX": f"{redis_key}:gw",
            "CACHE_PREFIX": f"{redis_key}:cache:",
            # Tokens signed in at the start stay valid through a long run.
            "ACCESS_TOKEN_TTL": "86400",
        }
        env.update(item.split("=", 1) for item in self.args.gateway_env)
        self.processes.start("gateway", gateway_server(ports[0]), {**env, "CACHE_ENABLED": "false"})
        self.processes.start(
            "gateway-cached",
            gateway_server(ports[3]),
            {
                **env,
                "CACHE_ENABLED": "true",
                "GATEWAY_BIND": f"127.0.0.1:{ports[3]}",
                "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics-cached"),
            },
        )
        self.processes.start(
            "floor", python_server("bench.floor:app", ports[1]), {"BENCH_DSN": dsn}
        )
        self.processes.start(
            "ceiling",
            python_server("bench.ceiling:app", ports[2]),
            {
                "BENCH_REDIS_URL": self.args.redis_url,
                "BENCH_REDIS_KEY": redis_key,
            },
        )
        self.processes.wait_ready("gateway", self.gateway, "/health/live")
        self.processes.wait_ready("gateway-cached", self.cached, "/health/live")
        self.processes.wait_ready("floor", self.floor, "/health/live")
        self.processes.wait_ready("ceiling", self.ceiling, "/")
        self.principals = sign_in(self.gateway)

    def warm(self, base: str, requests: list[Request]) -> None:
        a = self.args
        if a.warmup > 0:
            run_wrk(base, requests, seconds=a.warmup, connections=a.connections, threads=a.threads)

    def check(self, base: str, s: Scenario, floor: bool = False) -> int:
        """Answers a sample of the scenario's requests (spread over its list) must give:
        200 without GraphQL errors; the number of distinct bodies among them."""
        requests = s.floor if floor else s.gateway
        assert requests is not None
        step = max(1, len(requests) // 5)
        bodies = set()
        for request in requests[::step][:5]:
            answer = fetch(
                base, request.method, request.path, request.body, headers=request.headers
            )
            if answer.status != 200 or (s.graphql and answer.json().get("errors")):
                raise SystemExit(
                    f"bench: {s.name} on {base} answered {answer.status} to "
                    f"{request}: {answer.body[:500]!r}"
                )
            bodies.add(answer.body)
        return len(bodies)

    def cached_request(self, s: Scenario) -> tuple[Request | None, str]:
        """The form of the page (POST, else GET) the gateway answers from its cache."""
        body = s.gateway[0].body or {}
        forms = [
            s.gateway[0],
            Request(
                "GET",
                "/graphql?"
                + urlencode(
                    {"query": body.get("query", ""), "operationName": body.get("operationName", "")}
                ),
            ),
        ]
        verdict = None
        for form in forms:
            for _ in range(3):
                answer = fetch(self.cached, form.method, form.path, form.body)
            verdict = answer.headers.get("x-cache")
            if answer.status == 200 and (verdict or "").upper().startswith("HIT"):
                return form, ""
        if verdict is None:
            return None, "n/a: no response cache (no X-Cache header)"
        return None, f"n/a: X-Cache: {verdict}"

    def compare(self, s: Scenario, sides: list[tuple[str, str, list[Request]]]) -> list[list[Load]]:
        """The reference server (``sides[0]``) and the gateway's sides in alternating
        rounds, each warmed first: each side's loads, one a round.

        The machine's speed drifts (by a third within an hour on a shared 2-vCPU
        machine): measured one after the other, two servers would see different
        machines, and the ratio would carry that drift. Rounds alternate their order
        (reference first, then gateway first, ...), so a steady drift falls on all alike;
        each side's req/s is its requests over its time in all rounds.
        """
        a = self.args
        for _label, base, requests in sides:
            self.warm(base, requests)
        seconds = max(1, round(a.duration / a.rounds))
        loads: list[list[Load]] = [[] for _ in sides]
        order = list(range(len(sides)))
        for round_ in range(a.rounds):
            for i in order[:: 1 if round_ % 2 == 0 else -1]:
                _label, base, requests = sides[i]
                loads[i].append(
                    run_wrk(
                        base,
                        requests,
                        seconds=seconds,
                        connections=a.connections,
                        threads=a.threads,
                    )
                )
            ref, gw = loads[0][-1], loads[1][-1]
            ratio = gw.rps / ref.rps if ref.rps else 0.0
            line = (
                f"bench:   round {round_ + 1}: {sides[0][0]} {ref.rps:,.0f} req/s "
                f"(p99 {ref.p99_ms:.1f} ms), gateway {gw.rps:,.0f} req/s "
                f"(p99 {gw.p99_ms:.1f} ms): {ratio:.2f}x"
            )
            for i in range(2, len(sides)):
                other = loads[i][-1]
                line += (
                    f"; {sides[i][0]} {other.rps:,.0f} req/s "
                    f"({other.rps / gw.rps if gw.rps else 0.0:.2f}x anonymous)"
                )
            print(line, flush=True)
        return loads

    def statements(self, s: Scenario, side: tuple[str, str, list[Request]]) -> float | None:
        """SQL statements per request of one gateway side, in a short run of its own
        (/metrics counts the process, not a side)."""
        _label, base, requests = side
        before = counters(base)
        run_wrk(
            base, requests, seconds=1, connections=self.args.connections, threads=self.args.threads
        )
        after = counters(base)
        if before is None or after is None or after[1] <= before[1]:
            return None
        return (after[0] - before[0]) / (after[1] - before[1])

    def scenario(self, s: Scenario, redis_key: str) -> list[Row]:
        if s.floor is None:  # the cached page, against the ceiling
            cached, why = self.cached_request(s)
            if cached is None:
                return [Row(s.name, s.title, "gateway", None, None, note=why)]
            page = fetch(self.cached, cached.method, cached.path, cached.body).body
            redis.Redis.from_url(self.args.redis_url).set(redis_key, page, ex=3600)
            before = counters(self.cached)
            ref, gw = self.compare(
                s,
                [
                    ("ceiling", self.ceiling, [Request("GET", "/")]),
                    ("gateway", self.cached, [cached]),
                ],
            )
            return self.rows(s, "ceiling", ref, gw, before, counters(self.cached))
        distinct = self.check(self.gateway, s)
        self.check(self.floor, s, floor=True)
        print(
            f"bench:   {s.name}: {len(s.gateway):,} distinct requests; a sample of "
            f"{min(5, len(s.gateway))} gave {distinct} distinct answers",
            flush=True,
        )
        sides = [("floor", self.floor, s.floor), ("gateway", self.gateway, s.gateway)]
        base_name = s.name.removesuffix(ONE)
        signed_in = (
            self.args.signed_in == "yes" and base_name in SIGNED_IN and self.principals is not None
        )
        if signed_in:
            assert self.principals is not None
            for label, headers in (
                ("token", self.principals.customer),
                ("key", self.principals.key),
            ):
                side = (label, self.gateway, as_principal(s.gateway, headers))
                self.check(self.gateway, Scenario(s.name, s.title, side[2], None, s.graphql))
                sides.append(side)
        before = counters(self.gateway)
        loads = self.compare(s, sides)
        rows = self.rows(
            s,
            "floor",
            loads[0],
            loads[1],
            before,
            counters(self.gateway),
            anonymous_only=len(sides) > 2,
        )
        for (label, _base, requests), side_loads in zip(sides[2:], loads[2:], strict=True):
            ratios = [o.rps / g.rps for o, g in zip(side_loads, loads[1], strict=True) if g.rps]
            rows.append(
                Row(
                    f"{s.name} [{label}]",
                    f"{s.title}, {label}",
                    "gateway",
                    Load.combine(side_loads),
                    self.statements(s, (label, self.gateway, requests)),
                    rounds=ratios,
                    against=s.name,
                )
            )
        return rows

    def rows(
        self,
        s: Scenario,
        reference: str,
        ref_loads: list[Load],
        gw_loads: list[Load],
        before: tuple[float, float] | None,
        after: tuple[float, float] | None,
        anonymous_only: bool = False,
    ) -> list[Row]:
        per_request = None
        if before is not None and after is not None and after[1] > before[1]:
            per_request = (after[0] - before[0]) / (after[1] - before[1])
        if anonymous_only:  # the other sides' statements were counted too: count alone
            per_request = self.statements(s, ("gateway", self.gateway, s.gateway))
        ratios = [g.rps / r.rps for g, r in zip(gw_loads, ref_loads, strict=True) if r.rps]
        reference_statements = (
            None if reference == "ceiling" else (0.0 if s.name == "health" else 1.0)
        )
        return [
            Row(s.name, s.title, reference, Load.combine(ref_loads), reference_statements),
            Row(s.name, s.title, "gateway", Load.combine(gw_loads), per_request, rounds=ratios),
        ]


ONE = " [one]"


def run_scenarios(
    args: argparse.Namespace, bench: Bench, catalog: Catalog, redis_key: str
) -> list[Row]:
    rows: list[Row] = []
    runs = {"both": (False, True), "varied": (False,), "one": (True,)}[args.arguments]
    plans = {one: {s.name: s for s in scenarios(catalog, one=one)} for one in runs}
    for scenario_name in NAMES:
        if scenario_name not in args.only:
            continue
        for one in runs:
            if one and scenario_name not in VARIES and len(runs) > 1:
                continue  # nothing varies: its one run is the run
            s = plans[one][scenario_name]
            if one and scenario_name in VARIES:
                s = Scenario(
                    f"{scenario_name}{ONE}",
                    f"{s.title}, one argument",
                    s.gateway,
                    s.floor,
                    s.graphql,
                )
            print(f"bench: {s.title} ...", flush=True)
            rows.extend(bench.scenario(s, redis_key))
    return rows


def run_scale(
    args: argparse.Namespace, scale: int, workdir: Path
) -> tuple[str, dict[str, str], list[Row]]:
    """Seed (or reuse) a database of ``scale`` products, start the servers, measure:
    the printed table, the machine's description and the rows."""
    name = args.database or f"bench_{os.getpid()}_{secrets.token_hex(3)}"
    db_url = with_database(args.postgres_url, name).replace(
        "postgresql://", "postgresql+asyncpg://", 1
    )
    dsn = with_database(args.postgres_url, name)
    redis_key = f"bench:{name}:catalog"
    load_before = load_average()
    bench = Bench(args, workdir)
    if not args.database:
        asyncio.run(admin(args.postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        started = time.monotonic()
        if not args.database:
            print(f"bench: database {name}: seeding {scale} products ...", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "seed",
                    "--scale",
                    str(scale),
                    "--max-reviews",
                    str(args.max_reviews),
                ],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": db_url},
                check=True,
                stdout=subprocess.DEVNULL,
            )
        create_users(db_url)
        catalog, n_products, n_reviews = asyncio.run(read_catalog(dsn))
        print(
            f"bench: {n_products} products, {n_reviews} reviews, ready in "
            f"{time.monotonic() - started:.0f}s; starting servers ...",
            flush=True,
        )
        if args.mixed:
            asyncio.run(stock_up(dsn))
        bench.start(dsn, db_url, redis_key)
        if args.mixed:
            table = run_mixed(args, bench, catalog, dsn)
            rows: list[Row] = []
        else:
            rows = run_scenarios(args, bench, catalog, redis_key)
            table = render_table(rows)
            varied = render_varied(rows)
            if varied:
                table += "\n\nVaried arguments against one argument (the best case):\n\n" + varied
        print(table, flush=True)
        info = machine_info(dsn, n_products, n_reviews, load_before)
        return table, info, rows
    finally:
        bench.processes.stop_all()
        try:
            client = redis.Redis.from_url(args.redis_url)
            client.delete(redis_key)
            for key in client.scan_iter(f"{redis_key}:*", count=1000):
                client.delete(key)  # the gateway's cache and event keys of this run
        except redis.RedisError:
            pass
        if args.keep or args.database:
            print(f"bench: kept database {name} (reuse: --database {name})")
        else:
            asyncio.run(admin(args.postgres_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    wrk_path()
    signal.signal(signal.SIGTERM, _interrupt)
    command = "./dev bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    sections: list[tuple[str, dict[str, str], str]] = []
    by_scale: dict[int, list[Row]] = {}
    try:
        for scale in args.scales:
            with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
                table, info, rows = run_scale(args, scale, Path(tmp))
            heading = f"{scale:,} products" + (", mixed reads and writes" if args.mixed else "")
            sections.append((heading, info, table))
            by_scale[scale] = rows
        if len(args.scales) > 1 and not args.mixed:
            table = render_scales(by_scale)
            print("\nEach page at every scale:\n\n" + table)
            sections.append(("Each page at every scale", {}, table))
        if not args.no_record:
            write_results(args.results, command, sections, args)
            print(f"bench: recorded in {args.results}")
    except KeyboardInterrupt:
        print("bench: interrupted; stopping", file=sys.stderr)
        raise SystemExit(130) from None
