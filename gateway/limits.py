"""HTTP limits: request size, query-string length and a time limit per request.

Pure ASGI. A body over ``MAX_BODY_BYTES`` is refused 413 from its ``Content-Length``
before a byte is read, or, without one (chunked), as soon as the bytes received pass the
limit; whatever the app was about to answer is replaced. A query string over
``MAX_QUERY_STRING_BYTES`` is 414. A request that has not started its answer after
``REQUEST_TIMEOUT_SECONDS`` is cancelled and answered 504 ``TIMEOUT``; a streamed answer
(server-sent events) is exempt once it has started. REST paths answer problem+json,
``/graphql`` a GraphQL-shaped error, both with a code.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import problem_response

GRAPHQL_PATH = "/graphql"


class BodyTooLarge(HTTPException):
    """Raised into the app when the body passes the limit.

    A Starlette ``HTTPException`` so that FastAPI re-raises it instead of calling it a
    body it could not parse; the middleware answers in any case.
    """

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Content Too Large")


def refusal(scope: Scope, *, status: int, code: str, title: str, detail: str,
            headers: dict[str, str] | None = None) -> ASGIApp:
    """The answer for a refused request, in the shape its interface speaks."""
    if scope.get("path", "").rstrip("/") == GRAPHQL_PATH:
        extensions = {"code": code}
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            extensions["request_id"] = request_id
        body = orjson.dumps({"errors": [{"message": detail, "extensions": extensions}]})
        raw = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})

        return answer
    return problem_response(Request(scope), status=status, code=code, title=title,
                            detail=detail, headers=headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_query_string_bytes: int,
                 timeout_seconds: float) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_query = max_query_string_bytes
        self.timeout = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query:
            await refusal(scope, status=414, code="BAD_USER_INPUT", title="URI too long",
                          detail=f"The query string is over the limit of {self.max_query} "
                          "bytes.")(scope, receive, send)
            return
        declared = _content_length(scope)
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

        async def watched_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to a body it never got whole: ours replaces it
            if message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)  # streaming answers may take as long as they like
            await send(message)

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, limited_receive, watched_send)
        except TimeoutError:
            if started or not deadline.expired():  # not ours: the app's own TimeoutError
                raise
            await refusal(scope, status=504, code="TIMEOUT", title="Request timed out",
                          detail=f"The request took longer than {self.timeout:g} seconds "
                          "and was stopped.")(scope, receive, send)
            return
        except BodyTooLarge:
            if not over:
                raise
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refusal(scope, status=413, code="BAD_USER_INPUT", title="Content too large",
                      detail=f"The request body is over the limit of {self.max_body} bytes.",
                      headers={"Connection": "close"})(scope, receive, send)
