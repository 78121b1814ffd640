"""``./dev bench --mixed``: cached reads while the shop sells.

Reads go to the gateway with its response cache on (Redis), their arguments drawn over
the whole catalog; meanwhile a writer thread sends writes through REST at a steady rate:
a customer's orders (one item of a well-stocked product each) or a staff member's price
changes (a random product, a random price). Each page runs under every write load and
without writes, in alternating rounds; "kept" is the req/s with writes over the req/s
without, and the hit rate comes from the gateway's own cache counters in /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING

import asyncpg
import httpx

from bench.harness import CacheCount, Load, cache_counters, fetch, run_wrk
from bench.report import markdown
from bench.scenarios import Catalog, Request, scenarios

if TYPE_CHECKING:
    from bench.run import Bench

MIXED_PAGES = ("detail", "catalog", "rest-detail")
STOCK = 1_000_000  # what a well-stocked product gets: orders never empty it, inStock stays
# The targets: (page, write kind, writes per second) -> kept at least.
TARGETS = {
    ("detail", "order", 5.0): 0.8,
    ("rest-detail", "order", 5.0): 0.8,
    ("catalog", "order", 5.0): 0.9,
    ("detail", "price", 1.0): 0.7,
    ("rest-detail", "price", 1.0): 0.7,
}


@dataclass(frozen=True)
class Writes:
    kind: str  # "" (no writes), "order" or "price"
    rate: float  # per second

    @property
    def label(self) -> str:
        if not self.kind:
            return "none"
        noun = {"order": ("order", "orders"), "price": ("price change", "price changes")}
        return f"{self.rate:g} {noun[self.kind][self.rate != 1]}/s"


NO_WRITES = Writes("", 0.0)


async def stock_up(dsn: str) -> None:
    """Products already in stock get plenty (stock is shown to staff and partners only,
    and none of them goes out of stock), so the orders succeed."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "UPDATE products SET stock = $1 WHERE is_active AND stock >= 10", STOCK
        )
    finally:
        await connection.close()


async def stocked_products(dsn: str) -> list[int]:
    connection = await asyncpg.connect(dsn)
    try:
        return [
            r["id"]
            for r in await connection.fetch(
                "SELECT id FROM products WHERE is_active AND stock >= $1 ORDER BY id", STOCK // 2
            )
        ]
    finally:
        await connection.close()


@dataclass
class WriteStats:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)  # 0: no answer
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def __add__(self, other: WriteStats) -> WriteStats:
        return WriteStats(
            self.sent + other.sent,
            self.statuses + other.statuses,
            self.latencies_ms + other.latencies_ms,
            self.seconds + other.seconds,
        )


class Writer:
    """Writes at a steady rate from a thread of their own (a few in flight at most, so a
    slow answer does not slow the rate); ``stop`` waits for the last ones."""

    def __init__(
        self, base: str, writes: Writes, headers: dict[str, str], products: list[int], seed: int
    ) -> None:
        self.base, self.writes, self.products = base, writes, products
        self.headers = tuple(headers.items())
        self.rng = random.Random(seed)
        self.stats = WriteStats()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=8)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self.thread.start()

    def _run(self) -> None:
        k = 0
        while not self.done.is_set():
            # Half an interval in: n writes take n intervals, and the rate reads true.
            delay = self.started + (k + 0.5) / self.writes.rate - time.monotonic()
            if delay > 0 and self.done.wait(delay):
                break
            product = self.rng.choice(self.products)
            if self.writes.kind == "order":
                request = Request(
                    "POST", "/api/v1/orders", {"items": [{"product_id": product, "quantity": 1}]}
                )
            else:
                request = Request(
                    "PATCH",
                    f"/api/v1/products/{product}",
                    {"price_cents": self.rng.randrange(199, 49_999)},
                )
            self.pool.submit(self._send, request)
            k += 1

    def _send(self, request: Request) -> None:
        started = time.monotonic()
        try:
            status = fetch(
                self.base,
                request.method,
                request.path,
                request.body,
                headers=self.headers,
                timeout=10,
            ).status
        except OSError:
            status = 0
        with self.lock:
            self.stats.sent += 1
            self.stats.statuses[status] += 1
            self.stats.latencies_ms.append((time.monotonic() - started) * 1000)

    def stop(self) -> WriteStats:
        self.done.set()
        self.thread.join()
        self.pool.shutdown(wait=True)
        self.stats.seconds = time.monotonic() - self.started
        return self.stats


async def _prime(base: str, requests: list[Request], connections: int) -> None:
    pending = iter(requests)
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for r in pending:  # one iterator shared by the workers: each request once
                await client.request(r.method, r.path, json=r.body, headers=dict(r.headers))

        await asyncio.gather(*(worker() for _ in range(connections)))


def prime(base: str, requests: list[Request], connections: int) -> None:
    """Ask every request of the page once: the cache a shop's readers would have filled."""
    asyncio.run(_prime(base, requests, connections))


@dataclass
class Measured:
    loads: list[Load] = field(default_factory=list)
    cache: CacheCount = field(default_factory=CacheCount)
    writes: WriteStats = field(default_factory=WriteStats)


def _page(
    args: argparse.Namespace,
    bench: Bench,
    name: str,
    requests: list[Request],
    conditions: list[Writes],
    stocked: list[int],
) -> dict[Writes, Measured]:
    assert bench.principals is not None
    measured = {c: Measured() for c in conditions}
    seconds = max(1, round(args.duration / args.rounds))
    for round_ in range(args.rounds):
        shift = round_ % len(conditions)
        line = []
        for writes in conditions[shift:] + conditions[:shift]:
            started = time.monotonic()
            prime(bench.cached, requests, args.connections)
            primed = time.monotonic() - started
            writer = None
            if writes.kind:
                headers = (
                    bench.principals.customer if writes.kind == "order" else bench.principals.staff
                )
                products = stocked if writes.kind == "order" else bench.product_ids
                writer = Writer(bench.cached, writes, headers, products, seed=round_)
                writer.start()
            if args.warmup > 0:  # writes already streaming in: the steady state is measured
                run_wrk(
                    bench.cached,
                    requests,
                    seconds=args.warmup,
                    connections=args.connections,
                    threads=args.threads,
                )
            before = cache_counters(bench.cached)
            load = run_wrk(
                bench.cached,
                requests,
                seconds=seconds,
                connections=args.connections,
                threads=args.threads,
            )
            after = cache_counters(bench.cached)
            m = measured[writes]
            m.loads.append(load)
            if before is not None and after is not None:
                m.cache = m.cache + (after - before)
            if writer is not None:
                m.writes = m.writes + writer.stop()
            line.append(f"{writes.label} {load.rps:,.0f} req/s (primed in {primed:.1f}s)")
        print(f"bench:   round {round_ + 1}: {name}: " + "; ".join(line), flush=True)
    return measured


def _rate(cache: CacheCount) -> str:
    rate = cache.hit_rate
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def render_mixed(results: dict[str, dict[Writes, Measured]]) -> str:
    header = (
        "page",
        "writes",
        "no writes req/s",
        "hit rate",
        "with writes req/s",
        "hit rate",
        "p99 ms",
        "kept",
        "target",
        "writes ok/failed",
    )
    lines: list[tuple[str, ...]] = [header]
    for page, measured in results.items():
        base = measured[NO_WRITES]
        base_load = Load.combine(base.loads)
        for writes, m in measured.items():
            if not writes.kind:
                continue
            load = Load.combine(m.loads)
            kept = load.rps / base_load.rps if base_load.rps else 0.0
            rounds = [w.rps / b.rps for w, b in zip(m.loads, base.loads, strict=True) if b.rps]
            kept_cell = f"{kept:.2f}x"
            if len(rounds) > 1:
                kept_cell += f" ({min(rounds):.2f}-{max(rounds):.2f})"
            target = TARGETS.get((page, writes.kind, writes.rate))
            target_cell = (
                ""
                if target is None
                else (f">= {target:.1f}x: {'met' if kept >= target else 'NOT met'}")
            )
            w = m.writes
            failed = w.sent - w.ok
            writes_cell = f"{w.ok}/{failed} ({w.sent / w.seconds:.1f}/s" if w.seconds else "0/0 ("
            if w.latencies_ms:
                writes_cell += f", p50 {median(w.latencies_ms):.0f} ms"
            writes_cell += ")"
            if failed:
                writes_cell += " " + ", ".join(
                    f"{s or 'no answer'}: {n}"
                    for s, n in sorted(w.statuses.items())
                    if not 200 <= s < 300
                )
            flags = (
                f" ({load.errors} errors, {load.non2xx} non-2xx)"
                if load.errors or load.non2xx
                else ""
            )
            lines.append(
                (
                    page,
                    writes.label,
                    f"{base_load.rps:,.0f}",
                    _rate(base.cache),
                    f"{load.rps:,.0f}{flags}",
                    _rate(m.cache),
                    f"{load.p99_ms:.1f}",
                    kept_cell,
                    target_cell,
                    writes_cell,
                )
            )
    return markdown(lines)


def run_mixed(args: argparse.Namespace, bench: Bench, catalog: Catalog, dsn: str) -> str:
    """Every page of ``args.only`` under every write load; the table."""
    stocked = asyncio.run(stocked_products(dsn))
    if not stocked:
        raise SystemExit("bench: no product in stock to order")
    bench.product_ids = catalog.product_ids
    conditions = [
        NO_WRITES,
        *(Writes("order", r) for r in args.order_rates),
        *(Writes("price", r) for r in args.price_rates),
    ]
    plans = {s.name: s for s in scenarios(catalog)}
    results: dict[str, dict[Writes, Measured]] = {}
    for name in MIXED_PAGES:
        if name not in args.only:
            continue
        requests = plans[name].gateway
        first = requests[0]
        for _ in range(2):
            answer = fetch(bench.cached, first.method, first.path, first.body)
        if answer.status != 200 or "x-cache" not in answer.headers:
            raise SystemExit(
                f"bench: {name} on the cached gateway answered {answer.status} "
                f"without X-Cache: no response cache to measure"
            )
        print(
            f"bench: {plans[name].title}, cache on, with writes streaming in "
            f"({len(requests):,} distinct requests; {len(stocked):,} products to order) ...",
            flush=True,
        )
        results[name] = _page(args, bench, name, requests, conditions, stocked)
    return (
        "Cached reads while writes stream in (kept: req/s with writes over req/s "
        "without):\n\n" + render_mixed(results)
    )
