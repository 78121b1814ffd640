"""The ``/graphql`` router's options from the settings: limits, persisted queries, IDE."""

from __future__ import annotations

from typing import Any

from gateway.graphiql import graphiql_page
from gateway.settings import Settings
from resolvers.limits import GraphQLLimits
from resolvers.persisted import MemoryStore, Persisted, RedisStore, load_manifest


def graphql_options(settings: Settings, redis: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``graphql_router``; ``redis``: the process's Redis client,
    for persisted queries (else they are kept in process)."""
    limits = GraphQLLimits(
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_tokens=settings.graphql_max_tokens,
        max_cost=settings.graphql_max_cost,
        max_batch=settings.graphql_max_batch,
        introspection=settings.introspection_enabled,
        suggestions=settings.suggestions_enabled,
    )
    store = (
        RedisStore(redis, settings.graphql_apq_redis_prefix) if redis is not None else MemoryStore()
    )
    allowlist = load_manifest(settings.graphql_allowlist) if settings.graphql_allowlist else {}
    persisted = Persisted(
        store=store, allowlist=allowlist, allowlist_only=settings.graphql_allowlist_only
    )
    return {
        "graphiql": settings.graphiql_enabled,
        "limits": limits,
        "persisted": persisted,
        "batching": settings.graphql_max_batch > 0,
        "ide_html": graphiql_page,
    }
