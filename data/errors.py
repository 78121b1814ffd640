"""One error hierarchy for both interfaces.

Each error carries its contract code and HTTP status; REST renders it as problem+json,
GraphQL as ``extensions.code``. Anything that is not a ``DomainError`` is ``INTERNAL``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str


class DomainError(Exception):
    code = "INTERNAL"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str | None = None, *, errors: Sequence[FieldError] = ()) -> None:
        self.detail = detail or self.title
        self.errors = tuple(errors)
        super().__init__(self.detail)


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    status = 401
    title = "Authentication required"


class Forbidden(DomainError):
    code = "FORBIDDEN"
    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    code = "NOT_FOUND"
    status = 404
    title = "Not found"


class Conflict(DomainError):
    code = "CONFLICT"
    status = 409
    title = "Conflict"


class Invalid(DomainError):
    """Bad input the caller can fix (a tampered cursor, an unknown sort, ...)."""

    code = "BAD_USER_INPUT"
    status = 400
    title = "Bad request"


class InvalidInput(Invalid):
    """A request body (or header) that fails the operation's rules: 422, like a body that
    fails schema validation, with ``errors[].loc`` naming the offending value."""

    status = 422
    title = "Invalid request"


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))  # seconds, for the Retry-After header


class UnsupportedMediaType(Invalid):
    """A body in a content type the operation does not take."""

    status = 415
    title = "Unsupported media type"


def malformed_body(exc: ValueError) -> Invalid:
    """A request body that does not parse, described alike in both interfaces: where the
    parser stopped and why (``json.JSONDecodeError`` or ``UnicodeDecodeError``)."""
    if isinstance(exc, UnicodeDecodeError):
        what = f"{exc.reason} at byte {exc.start}"
        detail = f"The request body is not valid UTF-8: {what}."
    elif isinstance(exc, json.JSONDecodeError):
        what = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
        detail = f"The request body is not valid JSON: {what}."
    else:
        what = str(exc)
        detail = f"The request body is not valid JSON: {what}."
    return Invalid(detail, errors=[FieldError(("body",), what)])


class Unavailable(DomainError):
    """A dependency the answer needs (the database) cannot be reached: 503, to be retried
    after ``retry_after`` seconds (``data.outages`` recognises these failures)."""

    code = "UNAVAILABLE"
    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))
