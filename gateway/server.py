"""Serving: a uvicorn ``Server`` that drains on SIGTERM, and its gunicorn worker.

On the first SIGTERM (or SIGINT) readiness turns 503 at once (``DRAIN``). With
``SHUTDOWN_DRAIN_SECONDS`` the server keeps accepting for that long, so a load balancer
sees the 503 and stops sending before the listener closes; then uvicorn stops
accepting, lets in-flight requests finish within ``SHUTDOWN_GRACE_SECONDS``, and runs
the app's lifespan shutdown, which closes the database pools. A second signal ends the
delay at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from types import FrameType
from typing import TypedDict

import uvicorn
from uvicorn_worker import UvicornWorker

from gateway.health import DRAIN
from gateway.http.protocol import GatewayHttpProtocol, HeadLimits
from gateway.settings import Settings

APP = "gateway.app:app_from_environment"
log = logging.getLogger("gateway.server")
# A request allocates tens of thousands of short-lived objects; at the default threshold
# (700) the collector runs dozens of times per GraphQL request.
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Once the app is loaded: its long-lived objects out of the collector's way
    (``gc.freeze``), and young collections less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float = 0.0) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        DRAIN.begin()
        if self.drain_seconds > 0 and self.drain_until is None:
            self.drain_until = time.monotonic() + self.drain_seconds
            log.info("draining before shutdown for %.1fs", self.drain_seconds)
            return
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            tune_gc()

    async def on_tick(self, counter: int) -> bool:
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


class ServerOptions(TypedDict):
    """The keyword arguments of ``uvicorn.Config`` that ``server_options`` sets."""

    http: type[asyncio.Protocol]
    server_header: bool
    access_log: bool
    timeout_graceful_shutdown: float


def server_options(settings: Settings) -> ServerOptions:
    """uvicorn options shared by ``gateway serve`` and the gunicorn worker."""
    return {
        # httptools, request heads bounded
        "http": GatewayHttpProtocol.with_limits(
            HeadLimits(
                target_bytes=settings.max_request_target_bytes,
                header_count=settings.max_header_count,
                header_line_bytes=settings.max_header_line_bytes,
                header_bytes=settings.max_header_bytes,
            )
        ),
        "server_header": False,
        "access_log": False,  # the gateway writes its own access line
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }


def serve(settings: Settings, *, host: str, port: int) -> None:
    """One process: uvicorn on ``host:port``."""
    config = uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        proxy_headers=True,
        log_config=None,
        **server_options(settings),  # type: ignore[arg-type]  # uvicorn annotates timeout_graceful_shutdown int; its asyncio.timeout takes a float
    )
    GatewayServer(config, drain_seconds=settings.shutdown_drain_seconds).run()


class GatewayWorker(UvicornWorker):
    """gunicorn's uvicorn worker, with no server banner, no second access log, and drain."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.settings = Settings()
        self.CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, **server_options(self.settings)}
        super().__init__(*args, **kwargs)
        # UvicornWorker hands uvicorn gunicorn's handlers; ours are on the root logger.
        logging.getLogger("uvicorn.error").handlers = []
        logging.getLogger("uvicorn.error").propagate = True

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = GatewayServer(self.config, drain_seconds=self.settings.shutdown_drain_seconds)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            raise SystemExit(3)  # gunicorn's WORKER_BOOT_ERROR
