"""graphql-core's schema under a Strawberry schema: ``core_schema(schema)``.

Strawberry builds a graphql-core ``GraphQLSchema`` from the types and keeps it as the
private attribute ``Schema._schema``; it offers no public accessor, and Strawberry's own
extensions read it the same way (``execution_context.schema._schema`` in
``strawberry.extensions.validation_cache``). The gateway hands it to graphql-core for
what graphql-core does with a schema: validating persisted documents, costing, cache
policies and compiled plans. Every such use goes through this one function, so a
Strawberry release that moves the attribute is one line to change, and
``tests/test_core_schema.py`` fails loudly, naming the installed version, when it does.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema


def core_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema a Strawberry ``Schema`` (or an execution context's
    ``schema``) executes with."""
    core = schema._schema
    if not isinstance(core, GraphQLSchema):
        raise TypeError(
            f"Strawberry's Schema._schema is {type(core).__name__}, not graphql-core's "
            "GraphQLSchema: resolvers/core_schema.py must follow the installed Strawberry"
        )
    return core
