"""Prometheus metrics, and ``/metrics`` in the text format.

Each app records into a registry of its own. Under gunicorn every worker writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode,
chosen by that variable when the worker starts); a scrape of any worker then sums them
all, and ``gunicorn.conf.py`` marks a dead worker's files in ``child_exit``.
Labels are bounded: route templates (never raw paths), a fixed set of methods, and at
most ``MAX_OPERATION_NAMES`` distinct GraphQL operation names per process.

What every request records (its count and duration, the requests in flight, the SQL
statements it sent, its cache result) is gathered in memory and written once per
event-loop turn (``Metrics.flush``): in multiprocess mode each write is a locked ``mmap``
update, and five or six of them per request cost a REST detail read more than its own
work. A scrape flushes first, so its own worker's numbers are exact; another
worker's are at most one of its loop turns old.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event
from starlette.responses import Response

from data.errors import Unauthenticated
from data.running import process_id, running_loop
from gateway.http.problems import domain_problem

UNMATCHED = "<unmatched>"
ANONYMOUS_OPERATION = "<anonymous>"
OTHER = "<other>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_OPERATION_NAMES = 200
# Pool gauges are read at most this often while requests come (and on every scrape).
POOL_GAUGE_SECONDS = 1.0
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# In multiprocess mode every write of a value first asks ``os.getpid()`` (a system call)
# whether the process forked since, to start files of its own. ``process_id`` (the pid as
# of the last fork) answers the same, and it is what prometheus-client's
# ``process_identifier`` is for. Chosen before any metric exists (metrics take their value
# class when they are made; none is made at import).
# With ``METRICS_WRITES=stock`` the client's own value class and a write per record.
STOCK_VALUE_CLASS = prometheus_values.ValueClass
TUNED_VALUE_CLASS = (
    prometheus_values.MultiProcessValue(process_identifier=process_id)  # type: ignore[no-untyped-call]
    if getattr(STOCK_VALUE_CLASS, "_multiprocess", False)
    else STOCK_VALUE_CLASS
)


class Metrics:
    """The gateway's instruments, in a registry of their own."""

    def __init__(self, multiprocess_dir: Path | None = None, *, tuned: bool = True) -> None:
        self.multiprocess_dir = multiprocess_dir
        # ``tuned=False`` (``METRICS_WRITES=stock``): every record written when it is made,
        # through prometheus-client's own value class.
        self.tuned = tuned
        prometheus_values.ValueClass = TUNED_VALUE_CLASS if tuned else STOCK_VALUE_CLASS
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.durations = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer HTTP requests.",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "gateway_http_requests_in_flight",
            "HTTP requests being answered.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.operations = Counter(
            "gateway_graphql_operations",
            "GraphQL operations executed.",
            ["operation", "type", "outcome"],
            registry=registry,
        )
        self.operation_durations = Histogram(
            "gateway_graphql_operation_duration_seconds",
            "Time to answer GraphQL operations.",
            ["operation", "type"],
            buckets=BUCKETS,
            registry=registry,
        )
        pool = ["pool"]
        self.pool_size = Gauge(
            "gateway_db_pool_size",
            "Connections the pool keeps.",
            pool,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_checked_out = Gauge(
            "gateway_db_pool_checked_out",
            "Pooled connections in use.",
            pool,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_overflow = Gauge(
            "gateway_db_pool_overflow",
            "Connections opened beyond the pool size.",
            pool,
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Rate limits
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Requests refused by a rate limit or the login backoff.",
            ["policy"],
            registry=registry,
        )
        # Response cache: labelled by interface, "rest" or "graphql"
        self.cache_hits = Counter(
            "gateway_cache_hits",
            "Responses served from the response cache.",
            ["interface"],
            registry=registry,
        )
        self.cache_misses = Counter(
            "gateway_cache_misses",
            "Shareable reads computed because no entry was current.",
            ["interface"],
            registry=registry,
        )
        self.cache_bypasses = Counter(
            "gateway_cache_bypasses",
            "Requests answered without the cache (private, "
            "writes, failed credentials, Redis unreachable).",
            ["interface"],
            registry=registry,
        )
        self.cache_invalidations_pending = Gauge(
            "gateway_cache_invalidations_pending",
            "Cache tags this process's writes bumped "
            "that Redis has not received yet (its lookups bypass meanwhile).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.cache_invalidation_failures = Counter(
            "gateway_cache_invalidation_failures",
            "Sends of cache invalidations to Redis that failed (kept, and sent again).",
            registry=registry,
        )
        self.cache_invalidations_relayed = Counter(
            "gateway_cache_invalidations_relayed",
            "Invalidations another process could not "
            "send, read from the database and sent to Redis by this one.",
            registry=registry,
        )
        self.cache_untrusted = Gauge(
            "gateway_cache_untrusted",
            "1 while this process does not serve from Redis because "
            "it could not check for undelivered invalidations recently.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Compiled plans: labelled by interface and event (hit, miss, eviction)
        self.plan_cache = Counter(
            "gateway_compiled_plans",
            "Lookups of compiled plans by operation shape: hits, "
            "misses (the full pipeline answers, and plans the shape), and evictions.",
            ["interface", "event"],
            registry=registry,
        )
        self.dependency_up = Gauge(
            "gateway_dependency_up",
            "Whether the last readiness probe reached a dependency (database, redis): 1 or 0.",
            ["dependency"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.db_statements = Counter(
            "gateway_db_statements", "SQL statements sent to the database.", registry=registry
        )
        # Read replica: where reads went and how far behind the replica is
        self.db_reads = Counter(
            "gateway_db_reads",
            "Reads routed with a replica configured, by target and why.",
            ["target", "reason"],
            registry=registry,
        )
        self.replica_up = Gauge(
            "gateway_db_replica_up",
            "1 while the replica answers, else 0.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.replica_lag_bytes = Gauge(
            "gateway_db_replica_lag_bytes",
            "WAL bytes between the newest known commit and the replica's replay.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.replica_lag_seconds = Gauge(
            "gateway_db_replica_lag_seconds",
            "Age of the last transaction the replica replayed, while it has WAL to replay.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._read_children: dict[tuple[str, str], Any] = {}
        self._operation_names: set[str] = set()
        # Labelled children by label values: ``labels()`` takes a lock and checks its
        # arguments on every call (the label sets are bounded, see above).
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._operation_children: dict[tuple[str | None, str, str], tuple[Any, Any]] = {}
        # This loop turn's records, written by ``flush`` (see the module's docstring).
        self._counts: dict[Any, int] = {}
        self._observations: dict[Any, list[float]] = {}
        self._in_flight = self._in_flight_written = 0
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # where a flush is due
        # Under gunicorn each worker's pool gauges are its own file: flushes keep them
        # current, to the second (reading the pools per request cost more than the probe).
        self._db: Any = None
        self._pools_observed_at = float("-inf")

    def count(self, counter: Any, amount: int = 1) -> None:
        """``counter.inc(amount)``, at the end of this loop turn."""
        if self._batched():
            self._add(counter, amount)
        else:
            counter.inc(amount)

    def observe(self, histogram: Any, seconds: float) -> None:
        """``histogram.observe(seconds)``, at the end of this loop turn."""
        if self._batched():
            self._append(histogram, seconds)
        else:
            histogram.observe(seconds)

    def _add(self, counter: Any, amount: int) -> None:
        counts = self._counts
        counts[counter] = counts.get(counter, 0) + amount

    def _append(self, histogram: Any, seconds: float) -> None:
        observations = self._observations.get(histogram)
        if observations is None:
            self._observations[histogram] = [seconds]
        else:
            observations.append(seconds)

    def plan_recorder(self, interface: str) -> Any:
        """What a plan cache calls on each hit, miss and eviction of ``interface``."""
        children = {
            event: self.plan_cache.labels(interface=interface, event=event)
            for event in ("hit", "miss", "eviction")
        }

        def record(event: str) -> None:
            self.count(children[event])

        return record

    def request_started(self) -> None:
        self._in_flight += 1
        if not self._batched():
            self.flush()

    def request_finished(self) -> None:
        self._in_flight -= 1
        if not self._batched():
            self.flush()

    def _batched(self) -> bool:
        """Whether a record can wait for this loop turn's flush (scheduled by the first).
        Outside a loop (a thread of its own, say) it is written at once."""
        if not self.tuned:
            return False
        try:
            loop = running_loop()
        except RuntimeError:
            return False
        if self._flush_loop is not loop:
            if self._flush_loop is not None:
                self.flush()  # due on another loop, which may never run again
            self._flush_loop = loop
            loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Writes what this process recorded since the last flush."""
        self._flush_loop = None
        counts, self._counts = self._counts, {}
        observations, self._observations = self._observations, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, values in observations.items():
            observe_all(histogram, values)
        if self._in_flight != self._in_flight_written:
            self._in_flight_written = self._in_flight
            self.in_flight.set(self._in_flight)
        if self._db is not None:
            now = time.monotonic()
            if now - self._pools_observed_at >= POOL_GAUGE_SECONDS:
                self._pools_observed_at = now
                self.observe_pools(self._db)

    def operation_label(self, name: str | None) -> str:
        if not name:
            return ANONYMOUS_OPERATION
        if not OPERATION_NAME.match(name):
            return OTHER
        if name not in self._operation_names:
            if len(self._operation_names) >= MAX_OPERATION_NAMES:
                return OTHER
            self._operation_names.add(name)
        return name

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        children = self._request_children.get((method, route or UNMATCHED, status))
        if children is None:
            labels = (method if method in METHODS else "OTHER", route or UNMATCHED, str(status))
            children = (self.requests.labels(*labels), self.durations.labels(*labels))
            if method in METHODS:
                self._request_children[method, route or UNMATCHED, status] = children
        if self._batched():  # ``count`` and ``observe`` under one check (every request)
            self._add(children[0], 1)
            self._append(children[1], seconds)
        else:
            children[0].inc()
            children[1].observe(seconds)

    def observe_operation(self, name: str | None, kind: str, outcome: str, seconds: float) -> None:
        children = self._operation_children.get((name, kind, outcome))
        if children is None:
            label = self.operation_label(name)
            children = (
                self.operations.labels(label, kind, outcome),
                self.operation_durations.labels(label, kind),
            )
            if label == name:  # bounded: the names operation_label admitted
                self._operation_children[name, kind, outcome] = children
        self.count(children[0])
        self.observe(children[1], seconds)

    def observe_pools(self, db: Any) -> None:
        """Pool gauges from SQLAlchemy's pool; pools without counters are skipped."""
        if db is None:
            return
        engines = {"primary": db.engine}
        if db.read_engine is not db.engine:
            engines["replica"] = db.read_engine
        for name, engine in engines.items():
            pool = engine.pool
            for gauge, method in (
                (self.pool_size, "size"),
                (self.pool_checked_out, "checkedout"),
                (self.pool_overflow, "overflow"),
            ):
                counter = getattr(pool, method, None)
                if callable(counter):
                    gauge.labels(name).set(max(int(counter()), 0))
        replica = getattr(db, "replica", None)
        if replica is not None:
            self.replica_up.set(1 if replica.up else 0)
            self.replica_lag_bytes.set(replica.lag_bytes)
            self.replica_lag_seconds.set(replica.lag_seconds if replica.up else 0)

    def watch(self, db: Any) -> None:
        """Counts every statement ``db``'s engines send (the benchmark divides by requests)
        and keeps its pool gauges current."""
        self._db = db
        engines = {id(db.engine): db.engine, id(db.read_engine): db.read_engine}
        for engine in engines.values():
            event.listen(engine.sync_engine, "before_cursor_execute", self._count_statement)
        replica = getattr(db, "replica", None)
        if replica is not None:
            replica.on_route = self._count_read

    def _count_read(self, target: str, reason: str) -> None:
        child = self._read_children.get((target, reason))
        if child is None:  # bounded: two targets, a handful of reasons
            child = self._read_children[target, reason] = self.db_reads.labels(target, reason)
        self.count(child)

    def _count_statement(self, *_args: Any) -> None:
        self.count(self.db_statements)

    def render(self) -> bytes:
        self.flush()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def observe_all(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(value)`` for each of ``values``: one write for the sum and one
    per bucket they fall in, rather than two per value. Through ``observe`` when the
    histogram is not prometheus-client's as this was written for."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(values) == 1:
        for value in values:
            histogram.observe(value)
        return
    falls: dict[int, int] = {}
    for value in values:
        index = bisect_left(bounds, value)  # the first bound >= value, as observe's
        falls[index] = falls.get(index, 0) + 1
    total.inc(sum(values))
    for index, amount in falls.items():
        buckets[index].inc(amount)


metrics_router = APIRouter(include_in_schema=False)


@metrics_router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    # Limits: METRICS_TOKEN puts the metrics behind a bearer token
    token = request.app.state.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return domain_problem(request, Unauthenticated("The metrics need their token."))
    recorder: Metrics = request.app.state.metrics
    db = getattr(request.app.state, "db", None)
    replica = getattr(db, "replica", None)
    if replica is not None:
        await replica.probe()  # the lag as of this scrape (bounded by its timeout)
    recorder.observe_pools(db)
    return Response(recorder.render(), media_type=CONTENT_TYPE_LATEST)
