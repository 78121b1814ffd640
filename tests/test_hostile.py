"""Hostile clients against a real server in production mode: oversized heads, floods,
absurd numbers, tampered cursors and forged tokens. No 5xx, nothing leaked (no
traceback, no driver name, no stock to a customer), and the probes keep answering
within their timeout while it goes on."""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import orjson
import pytest

from data.seed import DEMO_PASSWORD
from tests.serving import Served, serving

SECRET = "hostile-suite-secret-" + "k" * 32
PROBE_TIMEOUT = 2.0  # HEALTH_TIMEOUT_SECONDS's default
LEAKS = ("Traceback", "sqlalchemy", "aiosqlite", "asyncpg", "sqlite3", 'File "', "OperationalError")
STOCK = re.compile(r'"stock":\s*\d|\d+ left')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("hostile")
    env = {"ENVIRONMENT": "production", "JWT_SECRET": SECRET, "TRUSTED_HOSTS": "127.0.0.1"}
    with serving(["serve"], tmp, env) as served:
        yield served


def raw_request(served: Served, head: bytes, timeout: float = 30.0) -> tuple[int, bytes, bytes]:
    """Sends ``head`` on a socket of its own; the status, the response's head and body."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: the answer is already there to read
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head_part, _, body = data.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), head_part, body


def get_head(path: str = "/api/v1/products", extra: bytes = b"") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + extra
        + b"Connection: close\r\n\r\n"
    )


def assert_problem(status: int, head: bytes, body: bytes, expected: int) -> None:
    assert status == expected, body[:300]
    assert b"content-type: application/problem+json" in head.lower()
    problem = orjson.loads(body)
    assert (problem["status"], problem["code"]) == (expected, "BAD_USER_INPUT")
    assert problem["request_id"]


def assert_clean(response: httpx.Response) -> None:
    """No 5xx, no internals, and no stock count (every caller here is anonymous or a
    customer)."""
    assert response.status_code < 500, response.text[:500]
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text[:500])
    assert not STOCK.search(response.text), response.text[:500]


def test_a_header_over_the_line_limit_is_431_problem_json(server: Served) -> None:
    status, head, body = raw_request(server, get_head(extra=b"X-Big: " + b"a" * 9000 + b"\r\n"))
    assert_problem(status, head, body, 431)


def test_a_huge_header_is_refused_as_it_arrives(server: Served) -> None:
    # 64 MB, sent in full unless the server stops it: it answers long before.
    status, head, body = raw_request(server, get_head(extra=b"X-Big: " + b"a" * (64 << 20)))
    assert_problem(status, head, body, 431)


def test_too_many_headers_and_too_many_bytes_of_them_are_431(server: Served) -> None:
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(10_000))
    assert_problem(*raw_request(server, get_head(extra=many)), 431)
    heavy = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 4000) for i in range(6))
    assert_problem(*raw_request(server, get_head(extra=heavy)), 431)


def test_a_long_url_is_414_problem_json(server: Served) -> None:
    assert_problem(*raw_request(server, get_head("/api/v1/products?q=" + "a" * 9000)), 414)
    assert_problem(*raw_request(server, get_head("/api/v1/" + "a" * (1 << 20))), 414)


def test_a_kept_alive_connection_bounds_its_next_head_too(server: Served) -> None:
    first = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    second = get_head(extra=b"X-Big: " + b"a" * (1 << 20))
    _, head, body = raw_request(server, first + second)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 431" in body  # the second answer, after the first's body
    assert b'"code":"BAD_USER_INPUT"' in body


def test_heads_within_the_limits_are_served(server: Served) -> None:
    extra = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(50))
    status, _, _ = raw_request(server, get_head("/health/live?pad=" + "a" * 7000, extra))
    assert status == 200


def test_probes_answer_in_time_during_a_flood_of_huge_headers(server: Served) -> None:
    stop = threading.Event()
    refusals: list[int] = []

    def flood() -> None:
        while not stop.is_set():
            refusals.append(raw_request(server, get_head(extra=b"X-Big: " + b"a" * (16 << 20)))[0])

    workers = [threading.Thread(target=flood) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        timings = []
        with httpx.Client(base_url=server.url, timeout=PROBE_TIMEOUT) as probe:
            for _ in range(10):
                for path in ("/health/live", "/health/ready"):
                    began = time.monotonic()
                    assert probe.get(path).status_code == 200
                    timings.append(time.monotonic() - began)
                time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert refusals
    assert set(refusals) == {431}
    assert max(timings) < PROBE_TIMEOUT


# The application's own inputs.


def _token(claims: dict[str, Any], key: str = SECRET, alg: str = "HS256") -> str:
    now = int(time.time())
    base = {
        "sub": "1",
        "role": "admin",
        "type": "access",
        "iat": now,
        "exp": now + 600,
        "jti": "x",
        "iss": "commerce-gateway",
        "aud": "commerce-gateway-api",
    }
    return jwt.encode({**base, **claims}, key, algorithm=alg)


def _alg_none() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    now = int(time.time())
    return (
        part({"alg": "none", "typ": "JWT"})
        + "."
        + part(
            {
                "sub": "1",
                "role": "admin",
                "type": "access",
                "iat": now,
                "exp": now + 600,
                "iss": "commerce-gateway",
                "aud": "commerce-gateway-api",
            }
        )
        + "."
    )


FORGED = {
    "alg none": _alg_none(),
    "wrong signature": _token({}, key="another-secret-" + "x" * 40),
    "expired": _token({"iat": 1, "exp": 2}),
    "refresh as access": _token({"type": "refresh"}),
    "garbage": "not.a.jwt",
}


@pytest.mark.parametrize("kind", FORGED)
def test_forged_tokens_are_401_in_both_interfaces(server: Served, kind: str) -> None:
    headers = {"Authorization": f"Bearer {FORGED[kind]}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        rest = client.get("/api/v1/users", headers=headers)
        graphql = client.post(
            "/graphql", headers=headers, json={"query": "{ users(first: 1) { totalCount } }"}
        )
    assert rest.status_code == 401
    assert_clean(rest)
    assert graphql.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert_clean(graphql)


HOSTILE_REST = [
    "/api/v1/products/99999999999999999999999",
    "/api/v1/products/-1",
    "/api/v2/products/9223372036854775808",
    "/api/v1/products?limit=-5",
    "/api/v1/products?limit=99999999999999999999",
    "/api/v1/products?min_price=1e309",
    "/api/v1/products?max_price=-99999999999999999999999",
    "/api/v1/products?cursor=AAAA",
    "/api/v1/products?cursor=" + "Zm9v" * 50,
    "/api/v2/products?cursor=eyJrIjpbIngiXX0",
    "/api/v1/products?sort=;DROP",
    "/api/v2/products?fields=stock",
    "/api/v1/categories/%00",
    "/api/v1/products/1%00",
]


@pytest.mark.parametrize("path", HOSTILE_REST)
def test_absurd_rest_inputs_are_4xx_and_leak_nothing(server: Served, path: str) -> None:
    response = httpx.get(server.url + path, timeout=10)
    assert_clean(response)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


HOSTILE_GRAPHQL = [
    "{ products(first: 99999999999) { totalCount } }",
    "{ products(first: -1) { totalCount } }",
    '{ products(first: 5, after: "tampered") { totalCount } }',
    '{ product(id: "UHJvZHVjdDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk=") { name } }',
    '{ nodes(ids: ["%%%", ""]) { id } }',
    "{ products(first: 2) { edges { node { name stock } } } }",
    "{ " + "products(first: 1) { edges { node { category { " * 20 + "id" + " } } } }" * 20 + " }",
    'subscription { orderUpdated(id: "T3JkZXI6MQ==") { status } }',
]


@pytest.mark.parametrize("query", HOSTILE_GRAPHQL)
def test_absurd_graphql_inputs_leak_nothing(server: Served, query: str) -> None:
    response = httpx.post(server.url + "/graphql", json={"query": query}, timeout=10)
    assert_clean(response)
    assert response.status_code in (200, 400, 405)


def test_deeply_nested_json_bodies_are_4xx(server: Served) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/graphql", "/api/v1/auth/register"):
        response = httpx.post(
            server.url + path,
            content=deep,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert 400 <= response.status_code < 500
        assert_clean(response)
    variables = {
        "query": "query($f: ProductFilter) { products(filter: $f) { totalCount } }",
        "variables": {"f": orjson.loads(b'{"q":' * 500 + b'"x"' + b"}" * 500)},
    }
    assert_clean(httpx.post(server.url + "/graphql", json=variables, timeout=10))


def test_a_customer_learns_no_stock_from_a_refused_order(server: Served) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = client.post(
            "/api/v1/auth/token",
            data={"username": "customer@example.com", "password": DEMO_PASSWORD},
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        response = client.post(
            "/api/v1/orders",
            headers=headers,
            json={"items": [{"product_id": 1, "quantity": 1_000_000}]},
        )
        assert response.status_code in (409, 422)
        assert_clean(response)
        assert " left" not in response.text
        assert response.headers["Cache-Control"] == "no-store"


def test_a_subscription_over_plain_http_says_where_subscriptions_are_served(
    server: Served,
) -> None:
    query = 'subscription { orderUpdated(id: "T3JkZXI6MQ==") { status } }'
    for response in (
        httpx.post(server.url + "/graphql", json={"query": query}, timeout=10),
        httpx.get(server.url + "/graphql", params={"query": query}, timeout=10),
    ):
        assert response.status_code == 400
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "graphql-transport-ws" in error["message"]
    assert "graphql_unexpected_error" not in server.output()
    assert "Traceback" not in server.output()
