"""GraphQL-over-HTTP response media types, chosen from the request's ``Accept``.

Two media types answer a GraphQL request: ``application/graphql-response+json`` (its
status codes say whether the request was refused before it ran) and ``application/json``
(the legacy type: GraphQL errors are 200). ``negotiate`` picks one as RFC 9110 reads
``Accept``: the highest q-value wins, then the more specific range (``application/json``
over ``application/*`` over ``*/*``), then the one listed first. Wildcards alone and a
missing ``Accept`` give ``application/json``, so a client written before the new type
sees what it always saw. ``None`` means neither is acceptable: the answer is 406.

Under ``application/graphql-response+json`` a request error (nothing executed: the
document did not parse or validate, its variables did not coerce, a limit or a credential
refused it) has no ``data`` entry and a 4xx status from its code; an executed operation
is 200, field errors and ``data: null`` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
CONTENT_TYPES = {
    JSON: "application/json",
    GRAPHQL_RESPONSE: "application/graphql-response+json; charset=utf-8",
}
RAW_CONTENT_TYPES = {media: value.encode() for media, value in CONTENT_TYPES.items()}
NOT_ACCEPTABLE = (
    "The Accept header allows neither application/graphql-response+json nor "
    "application/json, the media types GraphQL answers in here."
)

_UTF8 = frozenset({"utf-8", "utf8"})
# A request error's status under application/graphql-response+json, by its code.
REQUEST_ERROR_STATUS = {
    "BAD_USER_INPUT": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "TIMEOUT": 504,
    "PERSISTED_QUERY_NOT_FOUND": 400,
    "QUERY_NOT_IN_SAFELIST": 403,
    "PERSISTED_QUERY_NOT_IN_LIST": 403,
}


def _ranges(accept: str) -> Iterable[tuple[str, float]]:
    """``(media range, q)`` for each well-formed element of an ``Accept`` value; a range
    that names a charset other than UTF-8 (the only one answered in) gets q=0."""
    for element in accept.lower().split(","):
        name, *params = element.split(";")
        name = name.strip()
        if name.count("/") != 1:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = -1.0
                if not 0.0 <= q <= 1.0:
                    q = -1.0  # malformed: the element is ignored
            elif key == "charset" and value not in _UTF8:
                q = 0.0
        if q >= 0.0:
            yield name, q


@lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str | None:
    """The media type to answer in, or ``None`` when ``Accept`` allows neither."""
    if accept is None or not accept.strip():
        return JSON
    # For each type: (q, specificity, -position) of the most specific range naming it.
    best: dict[str, tuple[float, int, int]] = {}
    for position, (name, q) in enumerate(_ranges(accept)):
        for media in (GRAPHQL_RESPONSE, JSON):
            if name == media:
                specificity = 3
            elif name == "application/*":
                specificity = 2
            elif name == "*/*":
                specificity = 1
            else:
                continue
            known = best.get(media)
            if known is None or specificity > known[1]:
                best[media] = (q, specificity, -position)
    choices = [(rank, media) for media, rank in best.items() if rank[0] > 0]
    if not choices:
        return None
    # Equal ranks (wildcards alone): application/json, the legacy default.
    choices.sort(key=lambda choice: (choice[0], choice[1] == JSON), reverse=True)
    return choices[0][1]


@lru_cache(maxsize=256)
def _negotiate_raw(accept: bytes) -> str | None:
    return negotiate(accept.decode("latin-1"))


def media_of_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """``negotiate`` for an ASGI scope's raw headers (several ``Accept`` lines joined)."""
    found: list[bytes] = []
    for name, value in headers:
        if name == b"accept":
            found.append(value)
    if not found:
        return JSON
    return _negotiate_raw(found[0] if len(found) == 1 else b",".join(found))


def request_error_status(errors: Iterable[Mapping[str, Any]]) -> int:
    """The status of a refused GraphQL request: its first client error's, else its first
    error's (400 for a code without one)."""
    statuses = [
        REQUEST_ERROR_STATUS.get(str((error.get("extensions") or {}).get("code")), 400)
        for error in errors
    ]
    return next((s for s in statuses if s < 500), statuses[0] if statuses else 400)
