"""RFC 9457 problem details for every REST error, from the one error hierarchy."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from data.errors import (
    DomainError,
    FieldError,
    NotFound,
    RateLimited,
    Unavailable,
    malformed_body,
)
from data.outages import unavailable_from

PROBLEM_TYPE = "https://gateway.example/problems/"
STATUS_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: tuple[FieldError, ...] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id_of(request),
    }
    if errors:
        body["errors"] = [{"loc": list(e.loc), "msg": e.msg} for e in errors]
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def domain_problem(request: Request, exc: DomainError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="gateway"'} if exc.status == 401 else None
    if isinstance(exc, RateLimited | Unavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=headers,
    )


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_problem(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    request.state.refused = True  # the handler never ran: the rate limit gives its cost back
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            # FastAPI keeps the parser's reason and offset; say where and why.
            doc = exc.body if isinstance(exc.body, str) else ""
            position = error["loc"][-1] if isinstance(error["loc"][-1], int) else 0
            reason = str(error.get("ctx", {}).get("error", "invalid JSON"))
            cause = json.JSONDecodeError(reason, doc, min(position, len(doc)))
            return domain_problem(request, malformed_body(cause))
    errors = tuple(
        FieldError(tuple(e.get("loc", ())), str(e.get("msg", "invalid"))) for e in exc.errors()
    )
    return problem_response(
        request,
        status=422,
        code="BAD_USER_INPUT",
        title="Invalid request",
        detail="The request has invalid parameters.",
        errors=errors,
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return domain_problem(request, NotFound(f"Nothing at {request.url.path}."))
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        return domain_problem(request, malformed_body(exc.__cause__))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    code = STATUS_CODES.get(
        exc.status_code, "BAD_USER_INPUT" if exc.status_code < 500 else "INTERNAL"
    )
    title = "Method not allowed" if exc.status_code == 405 else "Request error"
    return problem_response(
        request,
        status=exc.status_code,
        code=code,
        title=title,
        detail=str(exc.detail),
        headers=headers,
    )


def _method_index(document: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    index = []
    for path, item in document.get("paths", {}).items():
        pattern = re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)))
        methods = {m.upper() for m in item} & {"GET", "POST", "PUT", "PATCH", "DELETE"}
        if "GET" in methods:
            methods.add("HEAD")
        index.append((pattern, ", ".join(sorted(methods))))
    return index


def allowed_methods(request: Request) -> str | None:
    """Every method the path takes, from the OpenAPI document (Starlette names only those
    of the first route that matched the path: ``/users/me`` said ``GET``, not ``PATCH``)."""
    state = request.app.state
    index = getattr(state, "allowed_methods", None)
    if index is None:
        index = state.allowed_methods = _method_index(request.app.openapi())
    path = request.scope["path"]
    return next((methods for pattern, methods in index if pattern.fullmatch(path)), None)


def internal_error(request: Request) -> Response:
    """The 500 answer: the request id and nothing about what went wrong."""
    return problem_response(
        request,
        status=500,
        code="INTERNAL",
        title="Internal error",
        detail="Something went wrong on our side; quote the request id when reporting it.",
    )


def unexpected_answer(request: Request, exc: Exception) -> Response:
    """The answer to an exception no handler took: 503 when it is a database outage
    (``data.outages``), else the 500."""
    unavailable = unavailable_from(exc)
    if unavailable is not None:
        return domain_problem(request, unavailable)
    return internal_error(request)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette answers with this and re-raises; the front door (gateway.http.front), outside
    # it, logs the exception once (an outage only when it begins).
    return unexpected_answer(request, exc)


# Statuses any REST route can answer, from layers outside the routes (the HTTP protocol's
# head limits, a database outage anywhere): added to every operation's OpenAPI entry.
def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


__all__ = [
    "domain_problem",
    "install_problem_handlers",
    "internal_error",
    "problem_response",
    "unexpected_answer",
]
