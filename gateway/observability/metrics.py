"""Prometheus metrics, and ``/metrics`` in the text format.

Each app records into a registry of its own. Under gunicorn every worker writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode,
chosen by that variable when the worker starts); a scrape of any worker then sums them
all, and ``gunicorn.conf.py`` marks a dead worker's files in ``child_exit``.
Labels are bounded: route templates (never raw paths), a fixed set of methods, and at
most ``MAX_OPERATION_NAMES`` distinct GraphQL operation names per process.

Every record is written when it is made, through prometheus-client's own value class
(in multiprocess mode a locked ``mmap`` write each). Gathering a loop turn's records
and writing them once, with a value class of the gateway's own, measured within the
noise against this (docs/design/metrics.md). Pool gauges are read at most once a
second while requests come, and on every scrape.
"""

from __future__ import annotations

import hmac
import re
import time
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
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event
from starlette.responses import Response

from data.errors import Unauthenticated
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


class Metrics:
    """The gateway's instruments, in a registry of their own."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
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
        # Under gunicorn each worker's pool gauges are its own file: requests keep them
        # current, to the second (reading the pools per request cost more than the probe).
        self._db: Any = None
        self._pools_observed_at = float("-inf")

    def count(self, counter: Any, amount: int = 1) -> None:
        counter.inc(amount)

    def observe(self, histogram: Any, seconds: float) -> None:
        histogram.observe(seconds)

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
        self.in_flight.inc()
        self._observe_pools_now_and_then()

    def request_finished(self) -> None:
        self.in_flight.dec()
        self._observe_pools_now_and_then()

    def _observe_pools_now_and_then(self) -> None:
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
        children[0].inc()
        children[1].observe(seconds)

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
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
        return generate_latest(registry)


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
