"""Live order events between real server processes on one Redis, and at shutdown.

Every change is a real write through a server's API (``POST /orders``, staff's
``PATCH /orders/{id}``, the customer's cancel): the process that commits it publishes
to Redis, and the other process's subscribers hear it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from data.seed import DEMO_PASSWORD
from resolvers.ids import to_global_id
from tests.conftest import REDIS_URL
from tests.event_world import REDIS_PREFIX, require_redis
from tests.serving import serving

TIMEOUT = 15.0


async def login(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def sse_blocks(response: httpx.Response) -> AsyncIterator[str]:
    """The stream's SSE blocks (lines up to a blank line)."""
    block: list[str] = []
    async for line in response.aiter_lines():
        if line:
            block.append(line)
        elif block:
            yield "\n".join(block)
            block = []


async def next_event(blocks: AsyncIterator[str]) -> dict[str, Any]:
    while True:
        block = await asyncio.wait_for(anext(blocks), TIMEOUT)
        if block.startswith("id:"):
            data = block.split("\ndata: ", 1)[1]
            return dict(orjson.loads(data))


async def place_order(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    """``POST /api/v1/orders`` of one of the catalog's products in stock."""
    listing = await client.get("/api/v1/products?in_stock=true&limit=1")
    product_id = listing.json()["data"][0]["id"]
    response = await client.post(
        "/api/v1/orders", headers=auth, json={"items": [{"product_id": product_id, "quantity": 1}]}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def recv_json(ws: ClientConnection) -> Any:
    """The next message, which the protocol sends as JSON in a text frame."""
    frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(frame, str), f"a binary frame: {frame!r}"
    return orjson.loads(frame)


async def ws_subscribe(url: str, token: str, order_id: int) -> ClientConnection:
    ws = await connect(
        url.replace("http", "ws") + "/graphql", subprotocols=["graphql-transport-ws"]
    )  # type: ignore[list-item]
    await ws.send(
        orjson.dumps(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        ).decode()
    )
    ack = await recv_json(ws)
    assert ack["type"] == "connection_ack"
    for op, ident in (("1", order_id), ("probe", 2**31 - 1)):
        await ws.send(
            orjson.dumps(
                {
                    "id": op,
                    "type": "subscribe",
                    "payload": {
                        "query": "subscription($id: ID!) { orderUpdated(id: $id) { status } }",
                        "variables": {"id": to_global_id("Order", ident)},
                    },
                }
            ).decode()
        )
    # The probe (no such order) is answered once it has looked: by then the first
    # subscription, started before it, holds its place on the bus.
    refused = await recv_json(ws)
    assert refused["id"] == "probe"
    assert refused["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await recv_json(ws) == {"id": "probe", "type": "complete"}
    return ws


async def test_a_change_reaches_subscribers_on_two_server_processes(tmp_path: Path) -> None:
    await require_redis()
    prefix = f"{REDIS_PREFIX}-serving"
    env = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
    # One data directory: both servers share the embedded database and signing secret.
    with serving(["serve"], tmp_path, env) as a, serving(["serve"], tmp_path, env) as b:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=TIMEOUT) as client_a,
            httpx.AsyncClient(base_url=b.url, timeout=TIMEOUT) as client_b,
        ):
            token = await login(client_a, "customer@example.com")
            auth = {"Authorization": f"Bearer {token}"}
            staff = {"Authorization": f"Bearer {await login(client_b, 'staff@example.com')}"}
            order_id = await place_order(client_b, auth)
            ws = await ws_subscribe(b.url, token, order_id)
            try:
                path = f"/api/v1/orders/{order_id}/events"
                async with (
                    client_a.stream("GET", path, headers=auth) as on_a,
                    client_b.stream("GET", path.replace("v1", "v2"), headers=auth) as on_b,
                ):
                    assert on_a.status_code == on_b.status_code == 200
                    streams = [sse_blocks(on_a), sse_blocks(on_b)]
                    for blocks in streams:  # retry advice first: subscribed
                        assert (await asyncio.wait_for(anext(blocks), TIMEOUT)).startswith("retry:")
                    # Staff pay it through B; its customer cancels it through A.
                    paid = await client_b.patch(
                        f"/api/v1/orders/{order_id}", json={"status": "paid"}, headers=staff
                    )
                    assert paid.status_code == 200, paid.text
                    cancelled = await client_a.post(
                        f"/api/v2/orders/{order_id}/cancel", headers=auth
                    )
                    assert cancelled.status_code == 200, cancelled.text
                    sent = [("pending", "paid"), ("paid", "cancelled")]
                    for blocks in streams:
                        for previous, status in sent:
                            got = await next_event(blocks)
                            assert got["order_id"] == order_id
                            assert (got["previous_status"], got["status"]) == (previous, status)
                    for _, status in sent:
                        heard = await recv_json(ws)
                        assert heard["type"] == "next", heard
                        assert heard["payload"]["data"]["orderUpdated"]["status"] == status
            finally:
                await ws.close()


async def test_sigterm_ends_open_streams_at_once(tmp_path: Path) -> None:
    """Open streams end when shutdown begins: the server does not wait out its grace."""
    env = {"SHUTDOWN_GRACE_SECONDS": "120", "EVENTS_HEARTBEAT_SECONDS": "1"}
    with serving(["serve"], tmp_path, env) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=TIMEOUT) as client:
            token = await login(client, "staff@example.com")
            auth = {"Authorization": f"Bearer {token}"}
            async with client.stream("GET", "/api/v2/orders/1/events", headers=auth) as sse:
                assert sse.status_code == 200
                blocks = sse_blocks(sse)
                assert (await asyncio.wait_for(anext(blocks), TIMEOUT)).startswith("retry:")
                begun = time.monotonic()
                served.process.send_signal(signal.SIGTERM)
                rest = [block async for block in _until_end(blocks)]
                assert all(block == ": heartbeat" for block in rest), rest
        # uvicorn re-raises the signal it caught once it has shut down cleanly.
        assert await asyncio.to_thread(served.process.wait, 60) in (0, -signal.SIGTERM)
        # Generous: far below the 120 s grace the server would otherwise have waited.
        assert time.monotonic() - begun < 60
        output = served.output()
        assert "Application shutdown complete" in output
        assert "graceful shutdown exceeded" not in output
        assert "Traceback" not in output


async def _until_end(blocks: AsyncIterator[str]) -> AsyncIterator[str]:
    while True:
        try:
            yield await asyncio.wait_for(anext(blocks), 60)
        except StopAsyncIteration:
            return
