"""Rate limits as a client sees them: headers, 429s in both interfaces, costs, principals,
the stricter auth policy and the failed-login backoff, in process and in real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from data.db import Database
from data.errors import RateLimited
from data.models import Base
from data.passwords import HashingPool
from data.seed import DEMO_PASSWORD, seed
from gateway.ratelimit.buckets import Backoff, Spend, Store
from gateway.redis_client import Commands, connect
from gateway.settings import Settings
from tests.conftest import RATE_LIMIT_PREFIX, REDIS_URL, REQUIRE_SERVICES, make_settings
from tests.conftest import running_gateway as _running_gateway

RATE_LIMIT = re.compile(r'^"(\w+)";r=(\d+);t=(\d+)$')
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
EMAIL = "customer@example.com"


async def _redis_reachable() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small demo database; the limits do not depend on the database backend."""
    path = tmp_path_factory.mktemp("ratelimit") / "db.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    db = Database.from_url(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.write() as session:
        await seed(session, scale=20, demo=True)
    await db.dispose()
    return url


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Settings for the limiter's store: in process, or a real Redis under a prefix of this
    test's own, whose keys are deleted afterwards."""
    prefix = f"{RATE_LIMIT_PREFIX}{uuid.uuid4().hex[:8]}:"
    if request.param == "memory":
        yield {"rate_limit_key_prefix": prefix}
        return
    if not await _redis_reachable():
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    yield {"redis_url": REDIS_URL, "rate_limit_key_prefix": prefix}
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@dataclass
class Limited:
    app: Any
    client: httpx.AsyncClient

    def client_at(self, address: str) -> httpx.AsyncClient:
        """Another caller, from ``address``."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@asynccontextmanager
async def limited(
    url: str, tmp_path: Path, store: dict[str, Any], **limits: Any
) -> AsyncIterator[Limited]:
    settings = make_settings(url, tmp_path, **{**store, **limits})
    async with _running_gateway(settings, "sqlite") as gateway:
        yield Limited(gateway.app, gateway.client)


def levels(response: httpx.Response) -> dict[str, int]:
    """Remaining units by policy, from the ``RateLimit`` field."""
    out = {}
    for item in response.headers["RateLimit"].split(", "):
        match = RATE_LIMIT.match(item)
        assert match, response.headers["RateLimit"]
        out[match[1]] = int(match[2])
    return out


def graphql(query: str, **variables: Any) -> dict[str, Any]:
    return {"query": query, "variables": variables}


async def test_answers_carry_policy_and_remaining(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    async with limited(
        database_url, tmp_path, store, rate_limit_per_minute=60, rate_limit_burst=100
    ) as gw:
        first = await gw.client.get("/api/v1/categories", params={"limit": 5})
        assert first.status_code == 200
        assert first.headers["RateLimit-Policy"] == '"default";q=100;w=100'
        assert re.fullmatch(r'"default";r=94;t=\d+', first.headers["RateLimit"])
        second = await gw.client.get("/api/v2/products/1")
        assert levels(second)["default"] in (93, 94)  # 1 spent, at most 1 refilled
        # Probes and metrics are never limited or counted.
        assert "RateLimit" not in (await gw.client.get("/health/live")).headers


async def test_over_the_limit_rest_is_a_problem_with_retry_after(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    async with limited(
        database_url, tmp_path, store, rate_limit_per_minute=1, rate_limit_burst=3
    ) as gw:
        for _ in range(3):
            assert (await gw.client.get("/api/v1/products/1")).status_code == 200
        refused = await gw.client.get("/api/v1/products/1")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["code"] == "RATE_LIMITED"
        assert body["status"] == 429
        assert body["request_id"] == refused.headers["X-Request-ID"]
        assert 50 <= int(refused.headers["Retry-After"]) <= 60
        assert levels(refused) == {"default": 0}
        metrics = (await gw.client.get("/metrics")).text
        assert 'gateway_rate_limited_total{policy="default"} 1.0' in metrics


async def test_over_the_limit_graphql_is_429_with_the_code(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    query = '{ category(slug: "nope") { name } }'
    async with limited(
        database_url, tmp_path, store, rate_limit_per_minute=1, rate_limit_burst=2
    ) as gw:
        for _ in range(2):
            assert (await gw.client.post("/graphql", json=graphql(query))).status_code == 200
        refused = await gw.client.post("/graphql", json=graphql(query))
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Policy"] == '"default";q=2;w=120'
        error = refused.json()["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert refused.json()["data"] is None
        # A batch is answered with one result per operation; GET is limited alike.
        batch = await gw.client.post("/graphql", json=[graphql(query), graphql(query)])
        assert batch.status_code == 429
        assert [r["errors"][0]["extensions"]["code"] for r in batch.json()] == ["RATE_LIMITED"] * 2
        by_get = await gw.client.get("/graphql", params={"query": query})
        assert by_get.status_code == 429
        # Under application/graphql-response+json: that type, and no data entry.
        typed = await gw.client.post(
            "/graphql", json=graphql(query), headers={"Accept": "application/graphql-response+json"}
        )
        assert typed.status_code == 429
        assert typed.headers["content-type"].startswith("application/graphql-response+json")
        assert "data" not in typed.json()
        assert typed.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def spent(gw: Limited, request: Any) -> int:
    """How much one request spent from the default bucket (refill is negligible here)."""
    before = levels(await gw.client.get("/api/v1/products/1"))["default"]
    after = levels(await request())["default"]
    return before - after


async def test_graphql_spends_its_estimated_cost_as_rest_does(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    async with limited(
        database_url, tmp_path, store, rate_limit_per_minute=1, rate_limit_burst=10_000
    ) as gw:

        def post(query: str) -> Any:
            return lambda: gw.client.post("/graphql", json=graphql(query))

        trivial = await spent(gw, post('{ category(slug: "x") { name } }'))
        heavy = await spent(gw, post("{ products(first: 50) { edges { node { name } } } }"))
        assert trivial == 1
        assert heavy == 51
        # The REST list and its GraphQL twin cost alike.
        rest_page = await spent(gw, lambda: gw.client.get("/api/v1/products?limit=20"))
        graphql_page = await spent(gw, post("{ products(first: 20) { edges { node { name } } } }"))
        assert rest_page == graphql_page == 21
        assert await spent(gw, lambda: gw.client.get("/api/v2/products")) == 21  # default 20
        # A batch spends the sum; a document that does not parse spends 1 and is refused.
        batch = await spent(
            gw,
            lambda: gw.client.post(
                "/graphql",
                json=[
                    graphql("{ products(first: 5) { edges { node { name } } } }"),
                    graphql('{ category(slug: "x") { name } }'),
                ],
            ),
        )
        assert batch == 6 + 1
        broken = await gw.client.post("/graphql", json=graphql("{ products(first: "))
        assert "errors" in broken.json()
        assert await spent(gw, post("{ products(")) == 1


async def test_principals_have_buckets_of_their_own(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    async with limited(
        database_url, tmp_path, store, rate_limit_per_minute=1, rate_limit_burst=3
    ) as gw:
        token = (
            await gw.client.post(
                "/api/v1/auth/token", data={"username": EMAIL, "password": DEMO_PASSWORD}
            )
        ).json()["access_token"]
        for _ in range(4):
            last = await gw.client.get("/api/v1/products/1")
        assert last.status_code == 429
        # The same address signed in is the user's bucket; another address has its own.
        user = await gw.client.get(
            "/api/v1/products/1", headers={"Authorization": f"Bearer {token}"}
        )
        assert user.status_code == 200
        async with gw.client_at("10.1.2.3") as other:
            assert (await other.get("/api/v1/products/1")).status_code == 200
            # X-Forwarded-For is not trusted by default: it cannot buy a fresh bucket.
            forged = await gw.client.get(
                "/api/v1/products/1", headers={"X-Forwarded-For": "10.9.9.9"}
            )
            assert forged.status_code == 429


async def test_trusted_proxies_name_the_client(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    async with limited(
        database_url,
        tmp_path,
        store,
        rate_limit_per_minute=1,
        rate_limit_burst=2,
        rate_limit_trusted_proxies="127.0.0.0/8",
    ) as gw:

        def via(client: str) -> Any:
            return gw.client.get(
                "/api/v1/products/1", headers={"X-Forwarded-For": f"6.6.6.6, {client}"}
            )

        assert [(await via("10.0.0.1")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await via("10.0.0.2")).status_code == 200  # another client behind the proxy


async def test_auth_endpoints_are_stricter_in_both_interfaces(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    async with limited(
        database_url,
        tmp_path,
        store,
        auth_rate_limit_per_minute=1,
        auth_rate_limit_burst=4,
        rate_limit_per_minute=1000,
    ) as gw:
        wrong = {"username": "nobody@example.com", "password": "wrong-password"}
        assert (await gw.client.post("/api/v1/auth/token", data=wrong)).status_code == 401
        # Two aliased logins in one document spend two.
        double = await gw.client.post(
            "/graphql",
            json=graphql(
                'mutation { a: login(email: "x@example.com", password: "p") { accessToken } '
                'b: login(email: "y@example.com", password: "p") { accessToken } }'
            ),
        )
        assert double.status_code == 200
        assert levels(double)["auth"] == 1
        assert double.headers["RateLimit-Policy"] == '"default";q=1000;w=60, "auth";q=4;w=240'
        assert (
            await gw.client.post("/api/v2/auth/refresh", json={"refresh_token": "x"})
        ).status_code == 401
        refused = await gw.client.post("/api/v1/auth/token", data=wrong)
        assert refused.status_code == 429
        assert refused.json()["code"] == "RATE_LIMITED"
        assert refused.headers["RateLimit-Policy"] == '"auth";q=4;w=240'
        mutation = await gw.client.post("/graphql", json=graphql(LOGIN, e=EMAIL, p="x"))
        assert mutation.status_code == 429
        assert mutation.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        # Reads are not auth requests: they still pass.
        assert (await gw.client.get("/api/v1/products/1")).status_code == 200


async def rest_login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token", data={"username": "  Customer@Example.com ", "password": password}
    )


async def graphql_login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    return await client.post("/graphql", json=graphql(LOGIN, e=EMAIL, p=password))


def outcome(response: httpx.Response) -> str:
    if response.status_code == 429:
        body = response.json()
        code = body["code"] if "code" in body else body["errors"][0]["extensions"]["code"]
        assert code == "RATE_LIMITED"
        assert int(response.headers["Retry-After"]) >= 1
        return "locked"
    if response.status_code == 401 or "errors" in response.json():
        return "failed"
    assert response.status_code == 200, response.text
    return "ok"


@pytest.mark.parametrize(
    ("fail_with", "then"), [(rest_login, graphql_login), (graphql_login, rest_login)]
)
async def test_failed_logins_lock_the_account_in_both_interfaces(
    database_url: str, tmp_path: Path, store: dict[str, Any], fail_with: Any, then: Any
) -> None:
    async with limited(
        database_url, tmp_path, store, login_backoff_failures=3, login_backoff_base_seconds=1
    ) as gw:
        # A success forgets earlier failures.
        for password in ("wrong-1", "wrong-2", DEMO_PASSWORD, "wrong-3", "wrong-4"):
            await fail_with(gw.client, password)
        assert outcome(await then(gw.client, DEMO_PASSWORD)) == "ok"
        results = [outcome(await fail_with(gw.client, f"wrong-{n}")) for n in range(3)]
        assert results == ["failed", "failed", "failed"]
        # Locked for the network the failures came from, through either interface, even
        # with the password...
        async with gw.client_at("127.0.0.9") as neighbour:
            locked = await then(neighbour, DEMO_PASSWORD)
        assert outcome(locked) == "locked"
        assert int(locked.headers["Retry-After"]) == 1
        # ...but a stranger's failures do not lock the owner out of their own network.
        async with gw.client_at("10.7.7.7") as owner:
            assert outcome(await then(owner, DEMO_PASSWORD)) == "ok"
        # Another account is not locked.
        other = await gw.client.post(
            "/api/v1/auth/token", data={"username": "staff@example.com", "password": DEMO_PASSWORD}
        )
        assert other.status_code == 200
        # Each failure past the threshold locks twice as long.
        await asyncio.sleep(1.1)
        assert outcome(await fail_with(gw.client, "wrong-again")) == "failed"
        again = await then(gw.client, DEMO_PASSWORD)
        assert outcome(again) == "locked"
        assert int(again.headers["Retry-After"]) == 2
        metrics = (await gw.client.get("/metrics")).text
        assert 'gateway_rate_limited_total{policy="login"} 2.0' in metrics


async def test_instances_sharing_redis_share_the_bucket(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    limits = {"rate_limit_per_minute": 1, "rate_limit_burst": 4}
    async with (
        limited(database_url, tmp_path, store, **limits) as one,
        limited(database_url, tmp_path, store, **limits) as two,
    ):
        statuses = [
            (await gw.client.get("/api/v1/products/1")).status_code
            for gw in (one, two, one, two, one, two)
        ]
        if "redis_url" in store:  # one bucket for both instances
            assert statuses == [200, 200, 200, 200, 429, 429]
        else:  # in process: each instance (each worker) counts alone
            assert statuses == [200] * 6


async def test_a_full_password_hashing_queue_refuses_at_once() -> None:
    pool = HashingPool(threads=1, queue=1)
    gate = threading.Event()
    try:
        waiting = [asyncio.ensure_future(pool.run(gate.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)  # one runs, one waits: the queue is full
        with pytest.raises(RateLimited) as refused:
            await pool.run(lambda: True)
        assert refused.value.retry_after == 1
        gate.set()
        assert await asyncio.gather(*waiting) == [True, True]
        assert await pool.run(lambda: 7) == 7  # room again
    finally:
        gate.set()
        pool.shutdown()


async def test_a_persisted_query_sent_by_hash_costs_what_its_text_did(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    query = "{ products(first: 30) { edges { node { name } } } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    async with limited(
        database_url, tmp_path, store, rate_limit_per_minute=1, rate_limit_burst=10_000
    ) as gw:

        def post(body: dict[str, Any]) -> Any:
            return lambda: gw.client.post("/graphql", json=body)

        unknown = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
        assert await spent(gw, post(unknown)) == 1
        # A cheap text sent under the dear document's hash does not become its price.
        assert await spent(gw, post({"query": "{ __typename }", "extensions": extensions})) == 1
        assert await spent(gw, post({"extensions": extensions})) == 1
        assert await spent(gw, post({"query": query, "extensions": extensions})) == 31
        assert await spent(gw, post({"extensions": extensions})) == 31


async def test_a_redis_that_never_answers_costs_one_timeout_not_one_per_request() -> None:
    """A hung Redis (it accepts, then says nothing): the first request waits for the
    socket timeout and falls back to this process's buckets; the next ones do not wait."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect(Settings(redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_seconds=1))
    assert client is not None
    store = Store(Commands(client), "hung:", Backoff(5, 60, 1, 60))
    spend = [Spend("ip:1", capacity=10, rate=1.0, cost=1)]
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        allowed, levels = await store.take(spend)
        assert allowed
        assert levels[0].remaining == 9  # from the local bucket
        assert loop.time() - began >= 0.9  # the socket timeout, once
        began = loop.time()
        for _ in range(5):
            assert (await store.take(spend))[0]
        assert loop.time() - began < 0.5
        assert accepted
    finally:
        await client.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_refused_request_spends_nothing(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    """Refused before it ran (over the cost limit, invalid, malformed): the budget is
    as it was, so one such request cannot throttle everyone behind the same address."""
    async with limited(
        database_url, tmp_path, store, rate_limit_per_minute=1, rate_limit_burst=20_000
    ) as gw:

        async def level() -> int:
            return levels(await gw.client.get("/api/v1/products/1"))["default"]

        def post(body: Any) -> Any:
            return gw.client.post("/graphql", json=body)

        before = await level()
        too_dear = await post(
            graphql(
                "{ products(first: 100) { edges { node { reviews("
                "first: 100) { edges { node { title } } } } } } }"
            )
        )
        assert too_dear.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert levels(too_dear)["default"] < before - 5000  # charged while it was judged
        assert (await post(graphql("{ nope }"))).json()["errors"]
        assert (await post(graphql("{ products("))).json()["errors"]
        assert (
            await post({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}})
        ).json()["errors"]
        batch = await post(
            [
                graphql(
                    "{ products(first: 100) { edges { node { reviews("
                    "first: 100) { edges { node { title } } } } } } }"
                ),
                graphql("{ nope }"),
            ]
        )
        assert len(batch.json()) == 2
        assert (await gw.client.get("/api/v1/products?limit=abc")).status_code == 422
        # Only the level probes themselves spent (1 each), give or take the refill.
        assert before - 1 <= await level() <= before
        # What runs is still charged.
        ran = await post(graphql("{ products(first: 50) { edges { node { name } } } }"))
        assert "errors" not in ran.json()
        assert before - 53 <= await level() <= before - 51


async def test_failures_spread_over_many_networks_slow_the_account_but_never_lock_it(
    database_url: str, tmp_path: Path, store: dict[str, Any]
) -> None:
    async with limited(
        database_url,
        tmp_path,
        store,
        login_backoff_failures=3,
        login_slowdown_failures=6,
        login_slowdown_seconds=0.3,
    ) as gw:
        for network in range(5):  # two failures each: under every network's threshold
            async with gw.client_at(f"10.{network}.0.1") as stranger:
                for n in range(2):
                    assert outcome(await rest_login(stranger, f"wrong-{n}")) == "failed"
        async with gw.client_at("192.0.2.10") as owner:
            began = asyncio.get_running_loop().time()
            assert outcome(await graphql_login(owner, DEMO_PASSWORD)) == "ok"
            assert asyncio.get_running_loop().time() - began >= 0.3  # held, not refused
            assert outcome(await rest_login(owner, DEMO_PASSWORD)) == "ok"
