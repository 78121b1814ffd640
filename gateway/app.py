"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from data.db import Database
from data.tokens import TokenIssuer
from gateway.cache.middleware import CacheMiddleware, ResponseCache
from gateway.compiled.graphql import CompiledReads
from gateway.compiled.graphql_plans import GraphQLPlans
from gateway.compiled.lane import CompiledLane
from gateway.compiled.rest import CompiledRestReads, RestPlans
from gateway.docs import install_docs
from gateway.events import running_event_bus
from gateway.graphiql import mount_graphiql_assets
from gateway.graphql_options import graphql_options
from gateway.http.identity import IdentityMiddleware, build_token_issuer, principal_cache
from gateway.http.limits import RequestLimitsMiddleware
from gateway.http.problems import install_problem_handlers
from gateway.observability.logging import configure_logging, resolve_format
from gateway.operations import install_operations
from gateway.ratelimit.middleware import install_rate_limits
from gateway.redis_client import commands, connect, slot_prefix
from gateway.replica_floor import share_floor
from gateway.settings import Settings, load_settings
from resolvers.core_schema import core_schema
from resolvers.schema import graphql_router, schema
from rest.api import api_router
from rest.openapi import finish_openapi

API_VERSIONS = ("v1", "v2")


class GatewayApp(FastAPI):
    """FastAPI with the gateway's middleware outside the framework's own layers.

    Starlette puts added middleware inside its error and telemetry layers; the gateway's
    own (the front door, limits, identity, rate limits, the response cache, the compiled
    lane) answer most requests without routing, so they go outside, and those layers
    wrap the routes alone. The front door, outermost, catches and answers what escapes.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Requests go straight to the stack: FastAPI's own __call__ asks on every request
        # whether OpenTelemetry is configured (the gateway's metrics are Prometheus').
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
            return
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        await self.middleware_stack(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, finished by ``rest.openapi`` (every error as problem+json)."""
        if self.openapi_schema is None:
            self.openapi_schema = finish_openapi(super().openapi())
        return self.openapi_schema

    def build_middleware_stack(self) -> ASGIApp:
        added, self.user_middleware = self.user_middleware, []
        try:
            app = super().build_middleware_stack()
        finally:
            self.user_middleware = added
        for cls, args, kwargs in reversed(added):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings | None = None) -> GatewayApp:
    """A gateway for ``settings`` (read from the environment when not given)."""
    settings = settings or Settings()
    # One Redis client for the cache, rate limits, replica floor, persisted queries and
    # the readiness probe (the event bus subscribes on a connection of its own)
    redis = connect(settings)
    graphql = graphql_options(settings, redis)
    cache = ResponseCache(settings, core_schema(schema))  # response cache

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_url(
            settings.sqlalchemy_url, settings.database_read_url, settings.pool, settings.replica
        )
        if db.replica is not None:  # read-your-writes with a replica (docs/operations.md)
            share_floor(
                db.replica,
                redis=app.state.redis_commands,
                prefix=slot_prefix(settings.redis_prefix, settings),
                retry_seconds=settings.db_replica_retry_seconds,
            )
        app.state.db = db
        app.state.metrics.watch(db)  # SQL statements per request, pool gauges
        await cache.start(db, getattr(app.state, "metrics", None), app.state.redis_commands)
        try:
            # Live order events: app.state.events, fed by db commits
            async with running_event_bus(db, settings, app.state.principals) as app.state.events:
                yield
        finally:
            await cache.close()
            await db.dispose()
            await app.state.rate_limits.aclose()  # rate limits
            await graphql["persisted"].close()
            if app.state.redis is not None:
                await app.state.redis.aclose()

    app = GatewayApp(
        title="Commerce gateway",
        version="0.1.0",
        summary="One catalog, served through GraphQL and versioned REST.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI is the gateway's own page (gateway/docs.py), offline
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.redis_commands = (
        commands(app.state.redis, settings) if app.state.redis is not None else None
    )
    app.state.tokens = build_token_issuer(settings)
    app.state.principals = principal_cache(settings)
    # Compiled reads: one plan per operation shape, per interface
    app.state.compiled_reads = settings.compiled_reads
    app.state.lane_plans = GraphQLPlans(core_schema(schema), settings.compiled_plans_max_entries)
    app.state.rest_plans = RestPlans(settings.compiled_plans_max_entries)
    # ... and the hooks through which the resolvers and the REST handlers ask for them
    app.state.graphql_fast_reads = CompiledReads(app.state.lane_plans)
    app.state.rest_fast_reads = CompiledRestReads()

    @app.get("/.well-known/jwks.json", include_in_schema=False)
    async def jwks() -> dict[str, Any]:
        """The public keys that verify access tokens (empty with HS256)."""
        tokens: TokenIssuer = app.state.tokens
        return tokens.jwks()

    install_problem_handlers(app)
    # Limits: GraphQL limits, persisted queries; HTTP limits around identity
    # /graphql first: routes are tried in order, and it is one path against REST's many.
    app.include_router(graphql_router(**graphql), prefix="/graphql", include_in_schema=False)
    for version in API_VERSIONS:
        app.include_router(api_router(version))
    if settings.graphiql_enabled:
        mount_graphiql_assets(app)
    if app.openapi_url is not None:
        install_docs(app, app.openapi_url)
    # Outermost last (the front door): the request id exists before identity and every
    # handler.
    # Identity -> rate limits -> response cache -> routes: a cache hit still spends its cost.
    # Compiled lane: innermost, so everything above also runs for it
    if settings.compiled_reads and not settings.graphql_allowlist_only:
        app.add_middleware(
            CompiledLane,
            plans=app.state.lane_plans,
            rest_plans=app.state.rest_plans,
            state=app.state,
            memo_bytes=settings.compiled_memo_max_bytes,
        )
    # Response cache: inside identity (it needs the actor)
    app.state.cache = cache
    if cache.enabled:  # off: every answer is the front door's BYPASS, nothing to count
        app.add_middleware(CacheMiddleware, cache=cache)
    # Rate limits: inside identity, which resolves the principal
    install_rate_limits(app, settings)
    app.add_middleware(IdentityMiddleware)
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_query_string_bytes=settings.max_query_string_bytes,
        timeout_seconds=settings.request_timeout_seconds,
    )
    # Operations: probes, /metrics, access log, CORS, hosts, headers
    install_operations(app, settings)
    app.state.lane_plans.cache.record = app.state.metrics.plan_recorder("graphql")
    app.state.rest_plans.cache.record = app.state.metrics.plan_recorder("rest")
    return app


def app_from_environment() -> GatewayApp:
    """Entry point for ASGI servers: ``gateway.app:app_from_environment``.

    Unlike ``create_app`` (which tests call many times), it also sets up logging.
    """
    settings = load_settings()  # a settings error names the setting, never its value
    configure_logging(
        resolve_format(settings.log_format, production=settings.is_production), settings.log_level
    )
    return create_app(settings)
