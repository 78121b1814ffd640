"""A GraphQL answer that a service refused as ``RATE_LIMITED`` (the failed-login backoff,
a full password-hashing queue) is HTTP 429 with ``Retry-After``, as in REST; one with an
``UNAVAILABLE`` error (a database outage) carries ``Retry-After`` too, and is HTTP 503
when nothing of it ran (no data)."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from data.errors import RateLimited, Unavailable
from resolvers.errors import domain_error_of


class RateLimitedStatus(SchemaExtension):
    # Listed after ErrorCodes, so it sees the original errors before they are rewritten.
    def on_operation(self) -> Iterator[None]:
        yield
        errors = getattr(self.execution_context.result, "errors", None) or ()
        refused = [e.original_error for e in errors if isinstance(e.original_error, RateLimited)]
        response = getattr(self.execution_context.context, "response", None)
        if refused and response is not None:
            response.status_code = 429
            response.headers["Retry-After"] = str(max(e.retry_after for e in refused))
            return
        down = [d for d in map(domain_error_of, errors) if isinstance(d, Unavailable)]
        if down and response is not None:
            data = getattr(self.execution_context.result, "data", None)
            if not data or all(value is None for value in data.values()):
                response.status_code = 503
            response.headers["Retry-After"] = str(max(e.retry_after for e in down))
