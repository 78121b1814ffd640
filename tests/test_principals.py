"""Signed-in readers and API keys without a database round trip, and revocation at once.

A credential resolved once is remembered per process; deactivating a user, changing a
role, ending a login and revoking a key take effect on the very next request — in the
process that made the change and, through the event bus on Redis, in every other one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from data.actor import user_actor
from data.db import Database
from data.events import RedisBus
from data.models import Base
from data.principals import PrincipalCache
from data.seed import DEMO_PASSWORD, seed
from tests.conftest import (
    REDIS_URL,
    Gateway,
    PostgresDatabases,
    make_settings,
    new_database_url,
    running_gateway,
)
from tests.event_world import REDIS_PREFIX, require_redis
from tests.principals import login
from tests.serving import serving

# The cache itself.

ALICE = user_actor(7, "customer")


def test_a_revocation_forgets_every_credential_it_can_revoke() -> None:
    cache = PrincipalCache()
    cache.put("t1", ALICE, ("user:7", "login:a"), epoch=cache.epoch)
    cache.put("t2", ALICE, ("user:7", "login:b"), epoch=cache.epoch)
    cache.put("t3", user_actor(8, "staff"), ("user:8", "login:c"), epoch=cache.epoch)
    cache.forget({"login:a"})
    assert cache.get("t1") is None
    assert cache.get("t2") == ALICE
    cache.forget({"user:7"})
    assert cache.get("t2") is None
    assert cache.get("t3") is not None


def test_a_resolution_that_raced_a_revocation_is_not_remembered() -> None:
    cache = PrincipalCache()
    epoch = cache.epoch  # taken before the database was read
    cache.forget({"user:7"})  # a revocation commits meanwhile
    cache.put("t1", ALICE, ("user:7",), epoch=epoch)
    assert cache.get("t1") is None


def test_expired_credentials_and_an_untrusted_cache_answer_nothing() -> None:
    cache = PrincipalCache()
    cache.put("old", ALICE, ("user:7",), epoch=cache.epoch, expires_at=time.time() - 1)
    assert cache.get("old") is None
    cache.put("t1", ALICE, ("user:7",), epoch=cache.epoch)
    cache.distrust()
    assert cache.get("t1") is None
    cache.put("t1", ALICE, ("user:7",), epoch=cache.epoch)
    assert cache.get("t1") is None  # not even remembered while untrusted
    cache.trust()
    cache.put("t1", ALICE, ("user:7",), epoch=cache.epoch)
    assert cache.get("t1") == ALICE


def test_entries_live_at_most_their_ttl() -> None:
    cache = PrincipalCache(ttl=0.05)
    cache.put("t1", ALICE, ("user:7",), epoch=cache.epoch)
    time.sleep(0.1)
    assert cache.get("t1") is None


# One process.


@pytest.fixture
async def demo(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases
) -> AsyncIterator[Gateway]:
    """A gateway over a database of this test's own, with the demo users."""
    url = await new_database_url(backend, tmp_path, pg_databases)
    db = Database.from_url(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.write() as session:
        await seed(session, scale=10, demo=True)
    await db.dispose()
    async with running_gateway(make_settings(url, tmp_path), backend) as gateway:
        yield gateway


async def bearer(gateway: Gateway, email: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
    tokens = await login(gateway, email, password)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_a_known_token_costs_no_statement(demo: Gateway) -> None:
    gateway = demo
    headers = await bearer(gateway, "customer@example.com")
    with gateway.count_statements() as first:
        assert (await gateway.client.get("/api/v1/users/me", headers=headers)).status_code == 200
    with gateway.count_statements() as again:
        assert (await gateway.client.get("/api/v1/users/me", headers=headers)).status_code == 200
    assert again.count == first.count - 1, (first.statements, again.statements)
    assert not any("refresh_tokens" in s for s in again.statements)


async def test_a_known_api_key_is_still_no_bearer_token(demo: Gateway) -> None:
    gw = demo
    admin = await bearer(gw, "admin@example.com")
    created = await gw.client.post(
        "/api/v1/api-keys", headers=admin, json={"name": "partner", "scopes": ["catalog:read"]}
    )
    key = created.json()["key"]
    for _ in range(2):  # the second time, the key is a remembered credential
        assert (
            await gw.client.get("/api/v1/products", headers={"X-API-Key": key})
        ).status_code == 200
        refused = await gw.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {key}"}
        )
        assert refused.status_code == 401
        assert refused.json()["code"] == "UNAUTHENTICATED"


async def test_deactivation_role_change_logout_and_key_revocation_apply_at_once(
    demo: Gateway,
) -> None:
    gw = demo
    admin = await bearer(gw, "admin@example.com")
    customer = await bearer(gw, "customer@example.com")
    staff = await bearer(gw, "staff@example.com")
    me = (await gw.client.get("/api/v1/users/me", headers=customer)).json()
    staff_id = (await gw.client.get("/api/v1/users/me", headers=staff)).json()["id"]
    assert (await gw.client.get("/api/v1/users", headers=staff)).status_code == 200

    # A role change: the demoted member of staff is a customer on the next request.
    response = await gw.client.patch(
        f"/api/v1/users/{staff_id}", json={"role": "customer"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert (await gw.client.get("/api/v1/users", headers=staff)).status_code == 403

    # Deactivation: the remembered token stops working at once.
    response = await gw.client.patch(
        f"/api/v1/users/{me['id']}", json={"is_active": False}, headers=admin
    )
    assert response.status_code == 200, response.text
    refused = await gw.client.get("/api/v1/users/me", headers=customer)
    assert refused.status_code == 401
    assert refused.json()["code"] == "UNAUTHENTICATED"

    # Logout ends that login's access tokens too.
    tokens = await login(gw, "staff@example.com", DEMO_PASSWORD)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await gw.client.get("/api/v1/users/me", headers=headers)).status_code == 200
    response = await gw.client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 204
    assert (await gw.client.get("/api/v1/users/me", headers=headers)).status_code == 401

    # A revoked key.
    created = await gw.client.post(
        "/api/v1/api-keys", headers=admin, json={"name": "partner", "scopes": ["catalog:read"]}
    )
    key = {"X-API-Key": created.json()["key"]}
    assert (await gw.client.get("/api/v1/products", headers=key)).status_code == 200
    response = await gw.client.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=admin)
    assert response.status_code in (200, 204), response.text
    assert (await gw.client.get("/api/v1/products", headers=key)).status_code == 401


# Two processes on one Redis.


async def test_revocations_reach_another_instance_at_once(tmp_path: Path) -> None:
    await require_redis()
    env = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"{REDIS_PREFIX}-principals"}
    # One data directory: both servers share the embedded database and signing secret.
    with serving(["serve"], tmp_path, env) as a, serving(["serve"], tmp_path, env) as b:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
        ):

            async def token(email: str) -> tuple[dict[str, str], str]:
                response = await on_a.post(
                    "/api/v1/auth/token", data={"username": email, "password": DEMO_PASSWORD}
                )
                assert response.status_code == 200, response.text
                body = response.json()
                return {"Authorization": f"Bearer {body['access_token']}"}, body["refresh_token"]

            admin, _ = await token("admin@example.com")
            customer, _ = await token("customer@example.com")
            staff, staff_refresh = await token("staff@example.com")
            created = await on_a.post(
                "/api/v1/api-keys",
                headers=admin,
                json={"name": "partner", "scopes": ["catalog:read"]},
            )
            key = {"X-API-Key": created.json()["key"]}
            # B resolves and remembers each credential.
            for headers in (customer, staff, key):
                for _ in range(2):
                    assert (
                        await on_b.get(
                            "/api/v1/users/me"
                            if "Authorization" in headers
                            else "/api/v1/products",
                            headers=headers,
                        )
                    ).status_code == 200

            async def refused_on_b(path: str, headers: dict[str, str]) -> None:
                # The message is on B's socket before A answers; B reads it within
                # milliseconds. A generous bound keeps a loaded machine from flaking,
                # far below the ten seconds a missed message could last.
                deadline = time.monotonic() + 2.0
                while (status := (await on_b.get(path, headers=headers)).status_code) != 401:
                    assert status == 200
                    assert time.monotonic() < deadline, f"{path} still answered on B"

            me = (await on_b.get("/api/v1/users/me", headers=customer)).json()
            assert (
                await on_a.patch(
                    f"/api/v1/users/{me['id']}", headers=admin, json={"is_active": False}
                )
            ).status_code == 200
            await refused_on_b("/api/v1/users/me", customer)

            assert (
                await on_a.post("/api/v1/auth/logout", json={"refresh_token": staff_refresh})
            ).status_code == 204
            await refused_on_b("/api/v1/users/me", staff)

            assert (
                await on_a.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=admin)
            ).status_code in (200, 204)
            await refused_on_b("/api/v1/products", key)


async def test_a_process_trusts_remembered_principals_only_while_its_bus_listens() -> None:
    await require_redis()
    cache = PrincipalCache()
    bus = RedisBus(REDIS_URL, prefix=f"{REDIS_PREFIX}-trust")
    bus.remember_principals(cache)
    cache.put("t1", ALICE, ("user:7",), epoch=cache.epoch)
    assert cache.get("t1") is None  # not listening yet: nothing is trusted
    await bus.start()
    try:
        cache.put("t1", ALICE, ("user:7",), epoch=cache.epoch)
        assert cache.get("t1") == ALICE
        # Another process revokes: the message alone makes this one forget.
        other = RedisBus(REDIS_URL, prefix=f"{REDIS_PREFIX}-trust")
        try:
            await other.publish_revocations({"user:7"})
        finally:
            await other.close()
        deadline = time.monotonic() + 5
        while cache.get("t1") is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        await bus.close()
    cache.put("t2", ALICE, ("user:7",), epoch=cache.epoch)
    assert cache.get("t2") is None  # closed: nothing is trusted any more
