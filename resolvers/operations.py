"""Which GraphQL operation a request ran, left in the request state for logs and metrics.

Strawberry has already parsed the document; this only reads the name and type from it,
and whether the result had errors. The gateway's front door (access line, metrics) reads
``request.state.graphql``.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from resolvers.errors import code_of


class OperationInfo(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        request = getattr(context.context, "request", None)
        state = getattr(request, "state", None)
        if state is None:
            return
        try:
            kind = context.operation_type.value if context.graphql_document else "unknown"
        except Exception:  # an operation name the document does not define
            kind = "unknown"
        errors: list[GraphQLError] = getattr(context.result, "errors", None) or []
        # Refused before it ran (it does not parse, fails validation or a limit): the
        # rate limit gives its cost back (gateway.ratelimit.middleware).
        refused = (
            bool(errors)
            and getattr(context.result, "data", None) is None
            and all(error.path is None and code_of(error) == "BAD_USER_INPUT" for error in errors)
        )
        flags = getattr(state, "graphql_refused", None)
        if flags is None:
            state.graphql_refused = flags = []
        flags.append(refused)
        state.graphql = {
            "name": context.operation_name,
            "type": kind,
            "outcome": "error" if errors or context.result is None else "ok",
        }
