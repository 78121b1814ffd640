"""HTTP limits: request size, query-string length and a time limit per request.

Pure ASGI. A body over ``MAX_BODY_BYTES`` is refused 413 from its ``Content-Length``
before a byte is read, or, without one (chunked), as soon as the bytes received pass the
limit; whatever the app was about to answer is replaced. A query string over
``MAX_QUERY_STRING_BYTES`` is 414. A request that has not started its answer after
``REQUEST_TIMEOUT_SECONDS`` is cancelled and answered 504 ``TIMEOUT`` (503
``UNAVAILABLE`` while the database is known to be down: that is why it waited); a streamed answer
(server-sent events) is exempt once it has started. One timer watches every request in
flight (``data.deadlines.Deadlines``): an ``asyncio.timeout`` per request cost more than a cached
answer's own work. REST paths answer problem+json,
``/graphql`` a GraphQL-shaped error, both with a code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data.deadlines import Deadlines
from data.errors import Unavailable
from data.outages import DATABASE, RETRY_AFTER_SECONDS
from data.running import running_loop
from gateway.http.problems import problem_response
from resolvers.media import JSON, RAW_CONTENT_TYPES, media_of_headers

GRAPHQL_PATH = "/graphql"


class BodyTooLarge(HTTPException):
    """Raised into the app when the body passes the limit.

    A Starlette ``HTTPException`` so that FastAPI re-raises it instead of calling it a
    body it could not parse; the middleware answers in any case.
    """

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Content Too Large")


def refusal(
    scope: Scope,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> ASGIApp:
    """The answer for a refused request, in the shape its interface speaks."""
    if scope.get("path", "").rstrip("/") == GRAPHQL_PATH:
        extensions = {"code": code}
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            extensions["request_id"] = request_id
        body = orjson.dumps({"errors": [{"message": detail, "extensions": extensions}]})
        media = media_of_headers(scope.get("headers", ())) or JSON
        raw = [
            (b"content-type", RAW_CONTENT_TYPES[media]),
            (b"content-length", str(len(body)).encode()),
        ]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})

        return answer
    return problem_response(
        Request(scope), status=status, code=code, title=title, detail=detail, headers=headers
    )


def outage_answer(scope: Scope, exc: Unavailable | None = None) -> ASGIApp:
    """503 ``UNAVAILABLE`` with ``Retry-After``, in the shape the request's interface speaks."""
    exc = exc or Unavailable(
        "The database is unavailable; try again shortly.", retry_after=RETRY_AFTER_SECONDS
    )
    return refusal(
        scope,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers={"Retry-After": str(exc.retry_after)},
    )


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared ``Content-Length`` (``None`` if absent or not a number), and whether
    the request may carry a body at all (HTTP/1.1: only with a length or an encoding)."""
    length, framed = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            framed = True
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            framed = True
    return length, framed


async def _nothing() -> None:
    pass


class RequestLimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_query_string_bytes: int,
        timeout_seconds: float,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_query = max_query_string_bytes
        self.timeout = timeout_seconds
        # Tasks in flight, cancelled (and noted in ``expired``) when their time is up.
        self.expired: set[asyncio.Task[Any]] = set()
        self.deadlines: Deadlines[asyncio.Task[Any]] = Deadlines(timeout_seconds, self._expire)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query:
            await refusal(
                scope,
                status=414,
                code="BAD_USER_INPUT",
                title="URI too long",
                detail=f"The query string is over the limit of {self.max_query} bytes.",
            )(scope, receive, send)
            return
        declared, framed = _body_framing(scope)
        if declared is not None and declared > self.max_body:
            await self._too_large(scope, receive, send)
            return

        received = 0
        over = started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    over = True
                    raise BodyTooLarge
            return message

        deadlines = self.deadlines
        loop = running_loop()
        task = asyncio.current_task(loop)
        assert task is not None

        def watched_send(message: Message) -> Awaitable[None]:
            # Not a coroutine itself: the next layer's ``send`` is the caller's to await,
            # one coroutine fewer per message.
            nonlocal started
            if over:
                return _nothing()  # the app's answer to a body it never got whole: ours replaces it
            if message["type"] == "http.response.start":
                started = True
                deadlines.discard(task)  # streaming answers may take as long as they like
            return send(message)

        deadlines.add(task)
        try:
            # In HTTP/1 a request without a length or an encoding has no body to count
            # (a wrapper less for every GET); HTTP/2 needs neither for a body.
            counted = framed or scope.get("http_version") not in ("1.1", "1.0")
            await self.app(scope, limited_receive if counted else receive, watched_send)
        except asyncio.CancelledError:
            if task not in self.expired:
                raise  # not ours: the server's or the client's
            task.uncancel()
            if started:
                raise TimeoutError("request time limit passed mid-answer") from None
            if DATABASE.down:
                # It waited on a database that is known to be unreachable: say so.
                await outage_answer(scope)(scope, receive, send)
                return
            await refusal(
                scope,
                status=504,
                code="TIMEOUT",
                title="Request timed out",
                detail=f"The request took longer than {self.timeout:g} seconds and was stopped.",
            )(scope, receive, send)
            return
        except BodyTooLarge:
            if not over:
                raise
        except Exception:
            if not over:
                raise
        finally:
            deadlines.discard(task)
            if self.expired:
                self.expired.discard(task)
        if over and not started:
            await self._too_large(scope, receive, send)

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self.expired.add(task)
        task.cancel()

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refusal(
            scope,
            status=413,
            code="BAD_USER_INPUT",
            title="Content too large",
            detail=f"The request body is over the limit of {self.max_body} bytes.",
            headers={"Connection": "close"},
        )(scope, receive, send)
