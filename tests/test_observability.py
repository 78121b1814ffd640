"""Logs, errors and metrics of the running app (in process, both backends)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from data.services import products
from gateway.http.security import PAGE_CSP, STRICT_CSP
from gateway.observability.logging import AccessLog, configure_logging
from tests.conftest import Gateway, SeededDatabase, make_settings, running_gateway

SECRETS = ("SECRETBEARER0123456789", "SECRETAPIKEY0123456789", "hunter2-SECRETPASSWORD")


class Logs:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]


@pytest.fixture
def logs() -> Iterator[Logs]:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    try:
        yield Logs(stream)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


@contextmanager
def json_stream_alone() -> Iterator[None]:
    """The root's handlers as a server has them, the JSON stream alone: pytest adds a
    capture handler for each test phase, and with it ``AccessLog`` goes the stdlib's
    way (a test of its own way would test nothing). Used inside the test's body."""
    from gateway.observability import logging as gateway_logging

    handlers = logging.root.handlers
    logging.root.handlers = [gateway_logging._json_sink]  # type: ignore[list-item]
    try:
        yield
    finally:
        logging.root.handlers = handlers


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


async def scrape(gateway: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await gateway.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_access_line_per_request_with_route_template(gateway: Gateway, logs: Logs) -> None:
    response = await gateway.client.get(
        "/api/v1/products/1?q=x", headers={"X-Request-ID": "req-abc"}
    )
    assert response.headers["X-Request-ID"] == "req-abc"
    [line] = logs.events("request")
    assert line["request_id"] == "req-abc"
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/products/{product_id}"
    assert line["status"] == response.status_code
    assert line["principal"] == "anonymous"
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert "timestamp" in line


async def test_graphql_access_line_names_the_operation(gateway: Gateway, logs: Logs) -> None:
    await gateway.graphql("query TopThree { products(first: 3) { edges { node { name } } } }")
    [line] = logs.events("request")
    assert line["route"] == "/graphql"
    assert (line["operation"], line["operation_type"], line["outcome"]) == (
        "TopThree",
        "query",
        "ok",
    )


async def test_no_secret_reaches_the_logs(gateway: Gateway, logs: Logs) -> None:
    headers = {
        "Authorization": f"Bearer {SECRETS[0]}",
        "X-API-Key": SECRETS[1],
        "Cookie": f"session={SECRETS[0]}",
    }
    login = {"email": "someone@example.com", "password": SECRETS[2]}
    await gateway.client.post(f"/api/v1/auth/login?token={SECRETS[0]}", json=login, headers=headers)
    await gateway.client.get(f"/api/v1/products?api_key={SECRETS[1]}", headers=headers)
    query = "mutation Login($p: String!) { login(password: $p) { token } }"
    await gateway.client.post(
        "/graphql", json={"query": query, "variables": {"p": SECRETS[2]}}, headers=headers
    )
    structlog.get_logger("test").info("explicit", password=SECRETS[2], api_key=SECRETS[1])
    assert len(logs.events("request")) == 3
    for secret in SECRETS:
        assert secret not in logs.text
    [explicit] = logs.events("explicit")
    assert explicit["password"] == explicit["api_key"] == "[redacted]"


async def broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret SQL detail")


@pytest.fixture
async def resolver_gateway(seeded: SeededDatabase, tmp_path: Path) -> AsyncIterator[Gateway]:
    """Reads through the services every time (no compiled reads, no response cache), so
    a service made to fail is the one that answers."""
    settings = make_settings(seeded.url, tmp_path, compiled_reads=False, cache_enabled=False)
    async with running_gateway(settings, seeded.backend) as gw:
        yield gw


async def test_unhandled_rest_error_is_logged_once_and_masked(
    resolver_gateway: Gateway, logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(products, "list_products", broken)
    response = await resolver_gateway.client.get(
        "/api/v1/products", headers={"X-Request-ID": "boom-1"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "INTERNAL"
    assert body["request_id"] == "boom-1"
    assert "secret SQL detail" not in response.text
    assert "RuntimeError" not in response.text
    [error] = logs.events("unhandled_exception")
    assert error["request_id"] == "boom-1"
    assert "secret SQL detail" in error["exception"]
    assert "Traceback" in error["exception"]
    assert sum("secret SQL detail" in line for line in logs.text.splitlines()) == 1
    [access] = logs.events("request")
    assert access["status"] == 500


async def test_unhandled_graphql_error_is_logged_once_and_masked(
    resolver_gateway: Gateway, logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(products, "list_products", broken)
    body = await resolver_gateway.graphql(
        "query Broken { products(first: 2) { edges { node { name } } } }",
        headers={"X-Request-ID": "boom-2"},
    )
    [error] = body["errors"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL", "request_id": "boom-2"}
    assert "secret SQL detail" not in json.dumps(body)
    logged = [line for line in logs.lines() if "secret SQL detail" in json.dumps(line)]
    assert len(logged) == 1
    assert logged[0]["request_id"] == "boom-2"
    assert "Traceback" in logged[0]["exception"]
    [access] = logs.events("request")
    assert (access["operation"], access["outcome"]) == ("Broken", "error")


async def test_metrics_count_rest_and_graphql_requests(gateway: Gateway) -> None:
    before = await scrape(gateway)
    for _ in range(3):
        assert (await gateway.client.get("/api/v1/products/1")).status_code in (200, 404)
    status = (await gateway.client.get("/api/v1/products/1")).status_code
    await gateway.graphql("query Cheap { products(first: 1) { edges { node { name } } } }")
    await gateway.graphql("query Cheap { products(first: 1) { edges { node { name } } } }")
    await gateway.graphql("{ nope }")
    await gateway.client.get("/no/such/path/12345")
    after = await scrape(gateway)
    route = {"method": "GET", "route": "/api/v1/products/{product_id}", "status": str(status)}
    total = "gateway_http_requests_total"
    assert value(after, total, **route) - value(before, total, **route) == 4
    assert (
        value(after, "gateway_http_request_duration_seconds_count", **route)
        - value(before, "gateway_http_request_duration_seconds_count", **route)
        == 4
    )
    graphql = {"method": "POST", "route": "/graphql", "status": "200"}
    assert value(after, total, **graphql) - value(before, total, **graphql) == 3
    ops = "gateway_graphql_operations_total"
    assert value(after, ops, operation="Cheap", type="query", outcome="ok") == 2
    assert value(after, ops, operation="<anonymous>", type="query", outcome="error") == 1
    assert value(after, total, method="GET", route="<unmatched>", status="404") == 1
    assert not any("/no/such/path" in str(key) for key in after)
    assert value(after, "gateway_http_requests_in_flight") == 1  # the scrape itself
    assert ("gateway_db_pool_size", frozenset({("pool", "primary")})) in after


async def test_metrics_count_sql_statements(gateway: Gateway) -> None:
    # The benchmark divides this counter by requests: it must count each statement once.
    statements = "gateway_db_statements_total"
    before = value(await scrape(gateway), statements)
    assert (await gateway.client.get("/health/live")).status_code == 200
    after_probe = value(await scrape(gateway), statements)
    assert after_probe == before
    assert (await gateway.client.get("/api/v1/products/1")).status_code == 200
    assert value(await scrape(gateway), statements) == after_probe + 1


def test_log_format_auto_is_json_in_production() -> None:
    from gateway.observability.logging import resolve_format

    assert resolve_format("auto", production=True) == "json"
    assert resolve_format("console", production=True) == "console"
    assert resolve_format("json", production=False) == "json"


def test_the_access_line_is_the_line_structlog_writes(logs: Logs) -> None:
    """AccessLog writes straight to the JSON stream; the line is structlog's own."""
    fields = {
        "method": "GET",
        "route": "/api/v1/products",
        "status": 200,
        "duration_ms": 1.5,
        "principal": "user:7",
        "api_key": "gw_secret",
    }
    tokens = structlog.contextvars.bind_contextvars(request_id="req-1")
    try:
        with json_stream_alone():
            AccessLog("gateway.access").info("request", dict(fields))
            structlog.get_logger("gateway.access").info("request", **fields)
            logging.root.handlers[0].flush()
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
    fast, usual = logs.text.splitlines()
    assert fast != usual  # the timestamps differ, to the microsecond
    fast_line, usual_line = json.loads(fast), json.loads(usual)
    assert fast_line.pop("timestamp") <= usual_line.pop("timestamp")
    assert list(fast_line.items()) == list(usual_line.items())
    assert fast_line["request_id"] == "req-1"
    assert fast_line["api_key"] == "[redacted]"


REQUEST_LINES = [
    ("GET", "/api/v1/products/{product_id}", 200, 3.21, "anonymous", None),
    ("GET", "/api/v1/products/{product_id}", 200, 0.0, "anonymous", None),
    ("POST", "/graphql", 200, 12.3, "user:7", ("CatalogPage", "query", "ok")),
    ("POST", "/graphql", 400, 1234.56, "api_key:3", (None, "query", "error")),
    ("PATCH", 'odd "route" \\ é \x00', 404, 0.01, 'odd "principal"\n', None),
    ("GET", "/health/live", 200, 99999999.99, "\x00", ("\x00", "query", "ok")),
]


@pytest.mark.parametrize("fields", REQUEST_LINES)
def test_the_front_doors_access_line_is_the_general_paths_line(
    logs: Logs, fields: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AccessLog.request`` writes from a remembered template: the same bytes as
    ``info`` writes for the same fields, the first time and from the template after."""
    from gateway.http.front import REQUEST_ID
    from gateway.observability import logging as gateway_logging

    monkeypatch.setattr(gateway_logging, "utc_now_iso", lambda: "2026-11-30T03:00:00.123456Z")
    method, route, status, duration, principal, operation = fields
    general = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration,
        "principal": principal,
    }
    if operation is not None:
        general.update(zip(("operation", "operation_type", "outcome"), operation, strict=True))
    access = AccessLog("gateway.access")
    token = REQUEST_ID.set("0123456789abcdef0123456789abcdef")
    try:
        with json_stream_alone():
            access.info("request", dict(general))
            access.request(method, route, status, duration, principal, operation, REQUEST_ID)
            access.request(method, route, status, duration, principal, operation, REQUEST_ID)
    finally:
        REQUEST_ID.reset(token)
    reference, first, again = logs.text.splitlines()
    assert first == reference
    assert again == reference
    assert json.loads(reference)["request_id"] == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("fields", REQUEST_LINES[:4])
def test_the_stock_access_line_is_the_tuned_line(logs: Logs, fields: tuple[Any, ...]) -> None:
    """``ACCESS_LOG_LINES=stock``: every line through structlog and the stdlib handler,
    the same line as the template's but for the time it was written."""
    from gateway.http.front import REQUEST_ID

    token = REQUEST_ID.set("0123456789abcdef0123456789abcdef")
    try:
        with json_stream_alone():
            AccessLog("gateway.access").request(*fields, REQUEST_ID)
            AccessLog("gateway.access", tuned=False).request(*fields, REQUEST_ID)
            logging.root.handlers[0].flush()
    finally:
        REQUEST_ID.reset(token)
    tuned, stock = (json.loads(line) for line in logs.text.splitlines())
    assert tuned.pop("timestamp") <= stock.pop("timestamp")
    assert list(tuned.items()) == list(stock.items())


def test_the_front_doors_access_line_merges_what_else_is_bound(logs: Logs) -> None:
    """Anything else bound in structlog's context, or an id JSON would escape, goes the
    general way: the line still carries it."""
    from gateway.http.front import REQUEST_ID

    access = AccessLog("gateway.access")
    token = REQUEST_ID.set('not "sane"')
    tokens = structlog.contextvars.bind_contextvars(tenant="acme")
    with json_stream_alone():
        try:
            access.request("GET", "/x", 200, 1.0, "anonymous", None, REQUEST_ID)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
            REQUEST_ID.reset(token)
        access.request("GET", "/x", 200, 1.0, "anonymous", None, REQUEST_ID)  # nothing bound
    bound, unbound = logs.lines()
    assert (bound["tenant"], bound["request_id"]) == ("acme", 'not "sane"')
    assert "request_id" not in unbound
    assert "tenant" not in unbound


def test_the_access_line_follows_the_level_and_other_handlers(logs: Logs) -> None:
    access = AccessLog("gateway.access")
    logging.getLogger("gateway.access").setLevel(logging.WARNING)
    try:
        access.info("request", {"status": 200})
    finally:
        logging.getLogger("gateway.access").setLevel(logging.NOTSET)
    assert logs.text == ""
    extra = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(extra)  # another handler: the stdlib path serves both
    try:
        access.info("request", {"status": 201})
    finally:
        logging.getLogger().removeHandler(extra)
    assert json.loads(logs.text)["status"] == 201
    assert "201" in extra.stream.getvalue()


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_access_lines_are_written_in_batches_in_order() -> None:
    """With LOG_FLUSH_SECONDS the access lines of many requests go out in one write,
    after at most that long; a record logged meanwhile comes after the lines made before
    it, and the interpreter-exit flush (``logging.shutdown``) writes what is waiting."""
    stream = CountingStream()
    configure_logging("json", "INFO", stream=stream)
    try:
        access = AccessLog("gateway.access", flush_seconds=0.05)
        for status in range(200, 210):
            access.info("request", {"status": status})
        assert (stream.getvalue(), stream.writes) == ("", 0)  # waiting for the timer
        await asyncio.sleep(0.15)
        assert [json.loads(line)["status"] for line in stream.getvalue().splitlines()] == list(
            range(200, 210)
        )
        assert stream.writes == 1

        access.info("request", {"status": 301})
        structlog.get_logger("gateway.other").warning("something_else")
        access.info("request", {"status": 302})
        events = [json.loads(line) for line in stream.getvalue().splitlines()[10:]]
        assert [e.get("status", e["event"]) for e in events] == [301, "something_else"]
        logging.getLogger().handlers[0].flush()  # as logging.shutdown() does at exit
        assert json.loads(stream.getvalue().splitlines()[-1])["status"] == 302
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


async def test_gateway_access_lines_arrive_within_the_flush_interval(
    seeded: SeededDatabase, tmp_path: Path
) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    try:
        settings = make_settings(seeded.url, tmp_path, log_flush_seconds=0.05)
        async with running_gateway(settings, seeded.backend) as gateway:
            for _ in range(3):
                assert (await gateway.client.get("/api/v1/categories")).status_code == 200
            await asyncio.sleep(0.15)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["route"] for line in lines if line["event"] == "request"] == [
            "/api/v1/categories"
        ] * 3
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def test_the_access_line_timestamp_is_structlogs_iso_form() -> None:
    from datetime import UTC, datetime

    from gateway.observability.logging import utc_now_iso

    before = datetime.now(UTC)
    stamp = utc_now_iso()
    after = datetime.now(UTC)
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= parsed <= after
    assert len(stamp) in (len("2026-01-01T00:00:00Z"), len("2026-01-01T00:00:00.000000Z"))


def _sample(registry: Any, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)  # type: ignore[no-any-return]


async def test_metrics_are_written_as_they_are_recorded() -> None:
    from gateway.observability.metrics import Metrics

    metrics = Metrics()
    metrics.request_started()
    metrics.observe_request("GET", "/api/v1/products", 200, 0.02)
    metrics.observe_request("GET", "/api/v1/products", 200, 0.2)
    metrics.count(metrics.db_statements, 3)
    labels = {"method": "GET", "route": "/api/v1/products", "status": "200"}
    registry = metrics.registry
    assert _sample(registry, "gateway_http_requests_total", **labels) == 2
    assert _sample(registry, "gateway_http_request_duration_seconds_count", **labels) == 2
    assert (
        _sample(registry, "gateway_http_request_duration_seconds_bucket", le="0.025", **labels) == 1
    )
    assert _sample(
        registry, "gateway_http_request_duration_seconds_sum", **labels
    ) == pytest.approx(0.22)
    assert _sample(registry, "gateway_db_statements_total") == 3
    assert _sample(registry, "gateway_http_requests_in_flight") == 1
    metrics.request_finished()
    assert b"gateway_http_requests_in_flight 0.0" in metrics.render()


def test_metrics_recorded_outside_a_loop_are_written_at_once() -> None:
    from gateway.observability.metrics import Metrics

    metrics = Metrics()
    metrics.request_started()
    metrics.count(metrics.db_statements)
    metrics.observe_operation("Cheap", "query", "ok", 0.5)
    registry = metrics.registry
    assert _sample(registry, "gateway_http_requests_in_flight") == 1
    assert _sample(registry, "gateway_db_statements_total") == 1
    assert (
        _sample(
            registry,
            "gateway_graphql_operations_total",
            operation="Cheap",
            type="query",
            outcome="ok",
        )
        == 1
    )


def test_the_front_doors_headers_for_a_repeated_tuple_are_its_first_answers() -> None:
    from gateway.http.front import FrontHeaders, front_headers

    front = FrontHeaders(size=2)
    json_answer = (
        (b"content-type", b"application/json"),
        (b"etag", b'"1"'),
        (b"x-request-id", b"from-the-app"),
    )
    page = ((b"content-type", b"text/html; charset=utf-8"),)
    for headers, path in (
        (json_answer, "/api/v1/products/1"),
        (list(json_answer), "/x"),
        (page, "/graphql"),
        (page, "/docs"),
    ):
        want = [*front_headers(headers, path)[0], (b"x-request-id", b"r-1")]
        assert front(headers, path, b"r-1") == want
        again = front(headers, path, b"r-2")  # the same headers, another request
        assert again == [*want[:-1], (b"x-request-id", b"r-2")]
    assert [entry[0] for entry in front.known.values()] == [json_answer]  # not lists, not HTML
    assert dict(front(page, "/docs", b"r"))[b"content-security-policy"] == PAGE_CSP.encode()
    assert dict(front(page, "/x", b"r"))[b"content-security-policy"] == STRICT_CSP.encode()
    for n in range(3):  # bounded
        front(((b"etag", str(n).encode()),), "/", b"r")
    assert len(front.known) <= 2


def test_the_access_lines_own_keys_are_no_secrets_names() -> None:
    from gateway.observability.logging import _ACCESS_KEYS, _is_secret

    assert _ACCESS_KEYS
    assert not [key for key in _ACCESS_KEYS if _is_secret(key)]


def test_pool_gauges_follow_the_requests_to_the_second() -> None:
    from types import SimpleNamespace

    from gateway.observability.metrics import Metrics

    class Pool:
        checked_out = 3

        def size(self) -> int:
            return 10

        def checkedout(self) -> int:
            return self.checked_out

        def overflow(self) -> int:
            return 0

    pool = Pool()
    engine = SimpleNamespace(pool=pool)
    metrics = Metrics()
    metrics._db = SimpleNamespace(engine=engine, read_engine=engine)  # as watch(db) keeps it
    metrics.request_started()
    registry = metrics.registry
    assert _sample(registry, "gateway_db_pool_checked_out", pool="primary") == 3
    pool.checked_out = 4
    metrics.request_finished()  # within the second: not read again
    assert _sample(registry, "gateway_db_pool_checked_out", pool="primary") == 3
    metrics._pools_observed_at -= 1.0
    metrics.request_started()
    assert _sample(registry, "gateway_db_pool_checked_out", pool="primary") == 4
