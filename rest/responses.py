"""JSON bodies (orjson), the list envelope with its ``Link`` header, and ETags."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from starlette.responses import Response

from data.pagination import Page

T = TypeVar("T")


def json_response(request: Request, body: Any, *, status: int = 200) -> Response:
    """A JSON response with a strong ETag; ``If-None-Match`` on a GET gives 304."""
    content = orjson.dumps(body)
    etag = '"' + hashlib.blake2b(content, digest_size=16).hexdigest() + '"'
    headers = {"ETag": etag}
    if request.method == "GET" and status == 200:
        wanted = request.headers.get("if-none-match", "")
        if etag in {tag.strip().removeprefix("W/") for tag in wanted.split(",")} or wanted == "*":
            return Response(status_code=304, headers=headers)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def list_response(
    request: Request,
    page: Page[T],
    render: Callable[[T], dict[str, Any]],
    extra: Iterable[tuple[str, str]] = (),
) -> Response:
    """``{"data": [...], "next_cursor": ...}`` with ``Link: <...>; rel="next"``."""
    return envelope_response(
        request,
        {"data": [render(item) for item in page.items], "next_cursor": page.next_cursor},
        extra,
    )


def envelope_response(
    request: Request, body: dict[str, Any], extra: Iterable[tuple[str, str]] = ()
) -> Response:
    """A list envelope already built (by the service path or the compiled path)."""
    response = json_response(request, body)
    next_cursor = body["next_cursor"]
    if next_cursor is not None:
        next_url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    for name, value in extra:
        response.headers[name] = value
    return response
