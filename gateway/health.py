"""Probes: ``/health/live`` while the process runs, ``/health/ready`` when it can serve.

Readiness checks the database (``SELECT 1``) and, when ``REDIS_URL`` is set, Redis
(``PING``), each within ``HEALTH_TIMEOUT_SECONDS``; it answers 503 naming the failed
checks, and 503 once shutdown has begun (``DRAIN``), while in-flight requests finish.
Error texts are not echoed: a URL in one could hold a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from gateway.settings import Settings


class Drain:
    """Set when the server was told to stop; signals are per process, and so is this."""

    def __init__(self) -> None:
        self.started = False
        self._callbacks: list[Callable[[], None]] = []

    def begin(self) -> None:
        self.started = True
        # Called from a signal handler: the callbacks must only schedule work.
        for callback in list(self._callbacks):
            callback()

    def on_begin(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Calls ``callback()`` when shutdown begins; returns what unregisters it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def reset(self) -> None:
        self.started = False


DRAIN = Drain()

health_router = APIRouter(include_in_schema=False)


async def _check_database(db: Any) -> None:
    async with db.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check_redis(url: str, timeout: float) -> None:
    client = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _outcome(check: Any, timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            await check
    except TimeoutError:
        return "failed: timeout"
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"


@health_router.get("/health/live")
async def live() -> dict[str, str]:
    """Answers while the process runs."""
    return {"status": "ok"}


@health_router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """Whether this process can serve: database, Redis when configured, not draining."""
    if DRAIN.started:
        return JSONResponse({"status": "unavailable", "failed": ["shutdown"],
                             "checks": {"shutdown": "draining"}}, status_code=503)
    settings: Settings = request.app.state.settings
    timeout = settings.health_timeout_seconds
    checks = {"database": _outcome(_check_database(request.app.state.db), timeout)}
    if settings.redis_url:
        checks["redis"] = _outcome(_check_redis(settings.redis_url, timeout), timeout)
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    failed = [name for name, result in results.items() if result != "ok"]
    return JSONResponse(
        {"status": "unavailable" if failed else "ok", "failed": failed, "checks": results},
        status_code=503 if failed else 200,
    )
