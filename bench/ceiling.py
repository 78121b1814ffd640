"""The ceiling: a bare ASGI app that answers every request with one Redis GET.

No framework, no middleware: what a Python server on uvicorn can do when the answer is
already stored. ``BENCH_REDIS_URL`` and ``BENCH_REDIS_KEY`` say where the body is; the
client is redis-py, the one the gateway uses.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis

HEADERS = [(b"content-type", b"application/json")]


client: Any = None
key = ""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global client, key
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                key = os.environ["BENCH_REDIS_KEY"]
                client = aioredis.from_url(os.environ["BENCH_REDIS_URL"], max_connections=64)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await client.get(key) or b"{}"
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})
