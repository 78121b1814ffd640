"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from data.db import Database
from gateway.auth import IdentityMiddleware, build_token_issuer
from gateway.logging import configure_logging, resolve_format
from gateway.middleware import RequestIdMiddleware
from gateway.operations import install_operations
from gateway.problems import install_problem_handlers
from gateway.settings import Settings
from resolvers.schema import graphql_router
from rest.api import api_router

API_VERSIONS = ("v1", "v2")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A gateway for ``settings`` (read from the environment when not given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_url(settings.sqlalchemy_url, settings.database_read_url,
                               settings.pool)
        app.state.db = db
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(
        title="Commerce gateway",
        version="0.1.0",
        summary="One catalog, served through GraphQL and versioned REST.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.tokens = build_token_issuer(settings)

    @app.get("/.well-known/jwks.json", include_in_schema=False)
    async def jwks() -> dict[str, Any]:
        """The public keys that verify access tokens (empty with HS256)."""
        return app.state.tokens.jwks()

    install_problem_handlers(app)
    for version in API_VERSIONS:
        app.include_router(api_router(version))
    app.include_router(graphql_router(graphiql=settings.graphiql_enabled), prefix="/graphql",
                       include_in_schema=False)
    # Outermost last: the request id exists before identity and every handler.
    app.add_middleware(IdentityMiddleware)
    # --- operations (issue 4): probes, /metrics, access log, CORS, hosts, headers ---
    install_operations(app, settings)
    # --- end operations ---
    app.add_middleware(RequestIdMiddleware)
    return app


def app_from_environment() -> FastAPI:
    """Entry point for ASGI servers: ``gateway.app:app_from_environment``.

    Unlike ``create_app`` (which tests call many times), it also sets up logging.
    """
    settings = Settings()
    configure_logging(resolve_format(settings.log_format, production=settings.is_production),
                      settings.log_level)
    return create_app(settings)
