"""The schema and the ``/graphql`` router."""

from __future__ import annotations

import logging
from collections.abc import Callable

import strawberry
from graphql.error import GraphQLError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionContext

from resolvers.accounts import AccountQuery, ApiKey
from resolvers.accounts import Mutation as AccountMutation
from resolvers.catalog_writes import CatalogMutation
from resolvers.context import get_context
from resolvers.documents import DocumentCache
from resolvers.errors import ErrorCodes, RejectBadCredentials, is_unexpected
from resolvers.fast_reads import FastReadsHook
from resolvers.limits import DEFAULT_LIMITS, GraphQLLimits, Limits
from resolvers.operations import OperationInfo
from resolvers.orders import OrderMutation
from resolvers.persisted import Persisted
from resolvers.query import CatalogQuery
from resolvers.router import GatewayGraphQLRouter
from resolvers.subscriptions import Subscription, SubscriptionsOverWebSocket
from resolvers.throttled import RateLimitedStatus
from resolvers.types import Category, Order, Product, Review, User

log = logging.getLogger("gateway.graphql")


class GatewaySchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (domain errors, bad documents) are answers, not incidents.
        for error in errors:
            if is_unexpected(error):
                log.error("graphql_unexpected_error", exc_info=error.original_error)


@strawberry.type
class Query(CatalogQuery, AccountQuery):
    pass


@strawberry.type
class Mutation(OrderMutation, CatalogMutation, AccountMutation):
    pass


def build_schema() -> GatewaySchema:
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,  # live order events
        types=[Product, Category, Review, User, Order, ApiKey],
        # Limits before DocumentCache: it sets the parse options the cache keys on, and its
        # refusals must stand before cached validation. FastReadsHook (the compiled read path
        # the app installs) answers in on_execute only when nothing before it did.
        # RateLimitedStatus after ErrorCodes: it must see the original errors.
        extensions=[
            ErrorCodes,
            RejectBadCredentials,
            SubscriptionsOverWebSocket,
            OperationInfo,
            Limits,
            DocumentCache,
            FastReadsHook,
            RateLimitedStatus,
        ],
    )


schema = build_schema()


def graphql_router(
    *,
    graphiql: bool,
    limits: GraphQLLimits = DEFAULT_LIMITS,
    persisted: Persisted | None = None,
    batching: bool = True,
    ide_html: Callable[[], str] | None = None,
) -> GatewayGraphQLRouter:
    # Subscriptions: graphql-transport-ws only (graphql-ws is the retired protocol).
    return GatewayGraphQLRouter(
        schema,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        limits=limits,
        persisted=persisted,
        batching=batching,
        ide_html=ide_html,
        context_getter=get_context,
        graphql_ide="graphiql" if graphiql else None,
        allow_queries_via_get=True,
    )


def schema_sdl() -> str:
    return schema.as_str() + "\n"
