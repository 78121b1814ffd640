"""Error codes in GraphQL: ``extensions.code`` from the one error hierarchy.

Domain errors keep their message and code; parse and validation errors are
``BAD_USER_INPUT``; anything else is masked as ``INTERNAL`` (logged once, with its
traceback, by ``GatewaySchema.process_errors``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension

from data.errors import DomainError
from data.outages import unavailable_from


def domain_error_of(error: GraphQLError) -> DomainError | None:
    """The domain error behind ``error``: its own, or the ``Unavailable`` a database
    outage stands for."""
    original = error.original_error
    if isinstance(original, DomainError) or original is None:
        return original
    return unavailable_from(original)


def code_of(error: GraphQLError) -> str:
    domain = domain_error_of(error)
    if domain is not None:
        return domain.code
    if error.original_error is None or error.path is None:
        # Parsing, validation and variable coercion: the document or its input is wrong.
        return "BAD_USER_INPUT"
    return "INTERNAL"


def is_unexpected(error: GraphQLError) -> bool:
    return code_of(error) == "INTERNAL"


def _with_code(error: GraphQLError, request_id: str | None) -> GraphQLError:
    code = code_of(error)
    original = domain_error_of(error)
    extensions = dict(error.extensions or {})
    extensions["code"] = code
    message = error.message
    if isinstance(original, DomainError):
        message = original.detail
        if original.errors:
            extensions["errors"] = [{"loc": list(e.loc), "msg": e.msg} for e in original.errors]
    elif code == "INTERNAL":
        message = "Internal server error."
        extensions = {"code": code}
    if request_id:
        extensions["request_id"] = request_id
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def document_order(error: GraphQLError) -> tuple[int, int, tuple[tuple[int, str], ...]]:
    """Where an error points in the document, then its path: sibling fields resolve
    concurrently, and the order they fail in must not decide the order of ``errors``."""
    location = error.locations[0] if error.locations else None
    line, column = (location.line, location.column) if location is not None else (0, 0)
    path = tuple((p, "") if isinstance(p, int) else (-1, str(p)) for p in error.path or ())
    return line, column, path


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is None or not errors:
            return
        request = getattr(self.execution_context.context, "request", None)
        request_id = getattr(getattr(request, "state", None), "request_id", None)
        result.errors = [
            _with_code(error, request_id) for error in sorted(errors, key=document_order)
        ]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Subscriptions send results one by one (on_operation sees only the last, sent).
        errors = getattr(result, "errors", None)
        if errors and not all("code" in (error.extensions or {}) for error in errors):
            request = getattr(self.execution_context.context, "request", None)
            request_id = getattr(getattr(request, "state", None), "request_id", None)
            result.errors = [_with_code(error, request_id) for error in errors]
        yield


class RejectBadCredentials(SchemaExtension):
    """A request whose credential failed is answered ``UNAUTHENTICATED``, not run
    anonymously: a client with an expired token must learn to refresh it."""

    def on_execute(self) -> Iterator[None]:
        error = getattr(self.execution_context.context, "identity_error", None)
        if error is not None:
            self.execution_context.result = ExecutionResult(
                data=None, errors=[GraphQLError(error.detail, original_error=error)]
            )
        yield
