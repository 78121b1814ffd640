"""The OpenAPI document, true to behaviour, finished in one place.

Routers name only the errors that depend on what a route does (``problems(403, 409)``);
``finish_openapi`` adds those every route of its kind can answer, and documents every
error as ``application/problem+json`` with the one ``Problem`` schema, as
``gateway.http.problems`` renders them.
"""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` only for invalid input.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string", "examples": ["https://gateway.example/problems/not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {
            "type": "string",
            "enum": [
                "BAD_USER_INPUT",
                "UNAUTHENTICATED",
                "FORBIDDEN",
                "NOT_FOUND",
                "CONFLICT",
                "RATE_LIMITED",
                "UNAVAILABLE",
                "TIMEOUT",
                "INTERNAL",
            ],
        },
        "request_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"type": ["string", "integer"]},
                        "description": "Where: `body`, `query`, `path` or `header`, "
                        "then the field's path.",
                    },
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

DESCRIPTIONS = {
    400: "`BAD_USER_INPUT`: a body that is not JSON, a tampered cursor, an unknown field "
    "name, a value the service refuses.",
    401: "`UNAUTHENTICATED`: a credential is missing where one is needed, or is wrong, "
    "expired or revoked (never treated as anonymous).",
    403: "`FORBIDDEN`: the principal may not do this.",
    404: "`NOT_FOUND`: no such object, or one the principal may not see.",
    409: "`CONFLICT`: the change conflicts with the current state.",
    413: "`BAD_USER_INPUT`: the body is larger than `MAX_BODY_BYTES`.",
    414: "`BAD_USER_INPUT`: the request target is over `MAX_REQUEST_TARGET_BYTES`, or its "
    "query string over `MAX_QUERY_STRING_BYTES`.",
    415: "`BAD_USER_INPUT`: the body is not in a content type this operation takes.",
    422: "`BAD_USER_INPUT`: parameters or body fail validation; `errors` names each.",
    431: "`BAD_USER_INPUT`: the request's headers are over their limits (count, one header, "
    "all of them).",
    429: "`RATE_LIMITED`: over the principal's rate limit; retry after `Retry-After`.",
    500: "`INTERNAL`: a bug; the body carries the request id and nothing else.",
    503: "`UNAVAILABLE`: a dependency (the database) is down; retry after `Retry-After`.",
    504: "`TIMEOUT`: the request took longer than `REQUEST_TIMEOUT_SECONDS`.",
}

SECONDS = {"schema": {"type": "integer", "minimum": 0}}
HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": '`Bearer realm="gateway"`.',
        }
    },
    429: {"Retry-After": {**SECONDS, "description": "Seconds to wait."}},
    503: {"Retry-After": {**SECONDS, "description": "Seconds to wait."}},
}

# What any route can answer, before it runs or whatever it does.
EVERY_ROUTE = (401, 414, 429, 431, 500, 503, 504)


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the errors a route answers because of what it does; the rest
    are added by ``finish_openapi``."""
    return {code: {"description": DESCRIPTIONS[code]} for code in codes}


def _statuses(operation: dict[str, Any]) -> set[int]:
    """The error statuses the operation can answer, from its shape."""
    statuses = {
        int(code) for code in operation.get("responses", {}) if code.isdigit() and int(code) >= 400
    }
    statuses.update(EVERY_ROUTE)
    parameters = operation.get("parameters", [])
    body = operation.get("requestBody")
    if parameters or body:
        statuses.add(422)  # a value of the wrong type or out of its bounds
    if body:
        statuses.update((400, 413))  # malformed JSON; too large
    if any(p["in"] == "path" for p in parameters):
        statuses.add(404)
    if any(p["in"] == "query" and p["name"] in ("cursor", "fields") for p in parameters):
        statuses.add(400)  # a tampered cursor; an unknown field name
    return statuses


def _finish_operation(method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for status in sorted(_statuses(operation)):
        responses[str(status)] = {
            "description": DESCRIPTIONS.get(status, "An error."),
            **({"headers": HEADERS[status]} if status in HEADERS else {}),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
        }
    ok = responses.get("200", {})
    if method == "get" and "application/json" in ok.get("content", {}):
        ok.setdefault("headers", {})["ETag"] = {
            "schema": {"type": "string"},
            "description": "Send it as `If-None-Match`.",
        }
        responses["304"] = {"description": "Not modified: `If-None-Match` named the ETag."}
    operation["responses"] = dict(sorted(responses.items()))


def finish_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every REST operation's errors documented as problem+json."""
    for path, item in document.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            _finish_operation(method, operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    # FastAPI's own validation error shapes: this gateway answers Problem instead.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document
