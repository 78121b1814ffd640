"""Production operations wired into an app: probes, metrics, access logs, HTTP hardening."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from gateway.health import health_router
from gateway.http.front import FrontDoor
from gateway.observability.metrics import Metrics, metrics_router
from gateway.settings import Settings

EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-Cache",
    "ETag",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
]


def install_operations(app: FastAPI, settings: Settings) -> None:
    """Routes and middleware; call last: the front door is the outermost layer."""
    app.state.metrics = Metrics(settings.prometheus_multiproc_dir)
    earlier = len(app.router.routes)
    app.include_router(health_router)
    app.include_router(metrics_router)
    # Routes are matched in order: probes and scrapes come first, so that they do not try
    # every REST route before their own (it halved the cost of /health/live).
    routes = app.router.routes
    routes[:] = [*routes[earlier:], *routes[:earlier]]
    # Added innermost first: the front door sees every answer, including a refused host's.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "X-Request-ID",
                "If-None-Match",
            ],
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(
        FrontDoor,
        metrics=app.state.metrics,
        trusted_hosts=(None if settings.trusted_hosts == ["*"] else settings.trusted_hosts),
        log_flush_seconds=settings.log_flush_seconds,
        tuned_access_lines=settings.access_log_lines == "tuned",
    )
