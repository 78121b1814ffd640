"""The schema and the ``/graphql`` router."""

from __future__ import annotations

import logging

import strawberry
from graphql.error import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.types import ExecutionContext

from resolvers.accounts import AccountQuery, ApiKey, Mutation
from resolvers.context import get_context
from resolvers.errors import ErrorCodes, RejectBadCredentials, is_unexpected
from resolvers.operations import OperationInfo
from resolvers.query import CatalogQuery
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


def build_schema() -> GatewaySchema:
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        types=[Product, Category, Review, User, Order, ApiKey],
        extensions=[ErrorCodes, RejectBadCredentials, OperationInfo],
    )


schema = build_schema()


def graphql_router(*, graphiql: bool) -> GraphQLRouter:
    return GraphQLRouter(
        schema,
        context_getter=get_context,
        graphql_ide="graphiql" if graphiql else None,
        allow_queries_via_get=True,
    )


def schema_sdl() -> str:
    return schema.as_str() + "\n"
