"""Probes: ``/health/live`` while the process runs, ``/health/ready`` when it can serve.

Readiness checks the database (``SELECT 1``) and, when ``REDIS_URL`` is set, Redis
(``PING`` through the process's one client, the one that serves requests), each within
``HEALTH_TIMEOUT_SECONDS`` (the probe does not wait for a check that overran to clean up:
a frozen server would hold it for longer). The database is a
hard dependency: without it the answer is 503 naming it, as once shutdown has begun
(``DRAIN``), while in-flight requests finish. Redis is a soft one: every request is still
served correctly without it (the cache bypasses, limits fall back to this process), so
the answer stays 200 with ``"status": "degraded"``; an orchestrator must not pull every
instance because a shared cache restarts. Each probe sets ``gateway_dependency_up``.
Error texts are not echoed: a URL in one could hold a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from data.outages import DATABASE
from gateway.redis_client import ping
from gateway.settings import Settings

SOFT_DEPENDENCIES = frozenset({"redis"})  # down: degraded, still ready


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


def _forget(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a check abandoned by its probe fails quietly


async def _outcome(check: Any, timeout: float) -> str:
    """``"ok"`` or why not, within ``timeout``: a check still running then is cancelled
    and left to finish its clean-up on its own (closing a connection to a frozen server
    can take longer than the probe may)."""
    task = asyncio.ensure_future(check)
    task.add_done_callback(_forget)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        return "failed: timeout"
    exc = task.exception()
    return "ok" if exc is None else f"failed: {type(exc).__name__}"


@health_router.get("/health/live")
async def live() -> dict[str, str]:
    """Answers while the process runs."""
    return {"status": "ok"}


@health_router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    """Whether this process can serve: database, Redis when configured, not draining."""
    if DRAIN.started:
        return JSONResponse(
            {"status": "unavailable", "failed": ["shutdown"], "checks": {"shutdown": "draining"}},
            status_code=503,
        )
    settings: Settings = request.app.state.settings
    timeout = settings.health_timeout_seconds
    checks = {"database": _outcome(_check_database(request.app.state.db), timeout)}
    redis = getattr(request.app.state, "redis", None)
    if redis is not None:
        checks["redis"] = _outcome(ping(redis), timeout)
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    if results["database"] == "ok":
        DATABASE.recovered()
    else:  # a frozen database is known to be down here first (limits answer 503 then)
        DATABASE.failed(results["database"].removeprefix("failed: "))
    metrics = getattr(request.app.state, "metrics", None)
    for name, result in results.items():
        if metrics is not None:
            metrics.dependency_up.labels(name).set(1 if result == "ok" else 0)
    down = [name for name, result in results.items() if result != "ok"]
    failed = [name for name in down if name not in SOFT_DEPENDENCIES]
    degraded = [name for name in down if name in SOFT_DEPENDENCIES]
    status = "unavailable" if failed else "degraded" if degraded else "ok"
    body: dict[str, Any] = {"status": status, "failed": failed, "checks": results}
    if degraded:
        body["degraded"] = degraded
    return JSONResponse(body, status_code=503 if failed else 200)
