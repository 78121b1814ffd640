"""The compiled lane: catalog reads of a known shape, answered without the framework.

The first request of a shape (a GraphQL document, operation and actor class with the
variable values its SQL depends on; a REST route with its representation, sort and the
filters it has) goes through the full pipeline: FastAPI routing, Strawberry's parse,
validation, limits and extensions, ``gateway.compiled.graphql.CompiledReads`` or the REST
handler, which answers it with one SQL statement and keeps it as the plan of that shape
(``graphql_plans``, ``rest``). Every later request of the shape, whatever its
ids, slugs, cursors and prices, costs the statement with its own parameters and one
``orjson.dumps``: this middleware, the innermost of the stack (identity, rate limits,
the response cache, request limits, the access log and metrics all still run around
it), binds the request's values to the plan, runs it and sends ``{"data": ...}`` exactly
as the GraphQL router would have (a REST read: the handler's own response function, so
ETag, ``Link`` and 304 are its own). A GraphQL answer goes out in the media type the
router would have chosen from ``Accept`` (``resolvers.media``; a request that accepts
neither goes down to the router's 406).

What PostgreSQL answers is the whole input of the answer: the last answers are kept,
bounded in bytes, with the text they were made from, so the same request finding the
same text sends the same bytes again without parsing and re-encoding them (a REST
request with ``If-None-Match`` is answered afresh, for its 304).

Anything else goes down the stack untouched: another method or path, a body that is not
a single operation of only ``query``/``operationName``/``variables``, an identity error,
a shape nobody answered yet, a value the plan cannot take (an id that does not decode, a
cursor of another list, a number spelled otherwise: the pipeline answers its error), a
root object the statement does not find (the resolver path answers its ``NOT_FOUND``),
or a failure of the statement (logged; the reference answers).
``tests/test_compiled_lane.py`` holds its answers to the pipeline's, byte for byte,
headers included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from data.errors import Unavailable
from gateway.cache.asgi import GRAPHQL_PATH, ROUTES, Route, read_body, route_of
from gateway.compiled.cache import BoundedCache
from gateway.compiled.graphql_plans import GraphQLPlans
from gateway.compiled.planner import compiled_data, fetch_raw
from gateway.compiled.rest import RestPlans
from gateway.http.front import route_of as front_route_of
from resolvers.media import CONTENT_TYPES, RAW_CONTENT_TYPES, negotiate

log = logging.getLogger("gateway.graphql")
MAX_LANE_BODY = 64 * 1024  # a catalog page's document is a few hundred bytes
_FIELDS = frozenset({"query", "operationName", "variables"})


def _media(scope: Scope) -> str | None:
    """The answer's media type for a JSON body (``None``: not one the lane answers)."""
    content_type = None
    accept: list[bytes] = []
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is None:
                content_type = value
        elif name == b"accept":
            accept.append(value)
    if content_type is None or content_type.split(b";")[0].strip().lower() != b"application/json":
        return None
    return negotiate(b",".join(accept).decode("latin-1") if accept else None)


def _memo_size(entry: tuple[Any, ...]) -> int:
    """An answer's bytes: the statement's text, the body, the headers, and some overhead."""
    return 200 + sum(len(part) if isinstance(part, str | bytes) else 64 for part in entry)


class CompiledLane:
    def __init__(
        self,
        app: ASGIApp,
        plans: GraphQLPlans,
        rest_plans: RestPlans,
        state: Any,
        memo_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.plans = plans
        self.rest_plans = rest_plans
        self.state = state  # the app's state: its database exists once the lifespan ran
        # The last answers by request, bounded in bytes (see the module's docstring).
        self.memo = BoundedCache(memo_bytes, getsizeof=_memo_size)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: the branch's is the caller's to await, one frame fewer
        # for every suspension of the request to pass through.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        if scope["method"] == "GET" and scope["path"].startswith("/api/"):
            return self._rest(scope, receive, send)
        if scope["method"] == "POST" and scope["path"] == GRAPHQL_PATH and self.plans:
            return self._graphql(scope, receive, send)
        return self.app(scope, receive, send)

    async def _rest(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A REST read a handler answered with one compiled statement: the statement
        again, and the handler's own response function (ETag, ``Link``, 304)."""
        state = scope.get("state") or {}
        actor = state.get("actor")
        found = None
        if actor is not None and state.get("identity_error") is None:
            found = self.rest_plans.find(scope, actor)
        raw = None
        if found is not None:
            plan, params = found
            try:
                raw = await fetch_raw(self.state.db, plan.sql, params)
            except Unavailable:
                raise  # the front door answers 503: the handler would find it down too
            except Exception:
                log.exception("compiled_lane_failed")
        if raw is None:  # no plan, failed, or not found: the handler answers
            if found is not None:
                # The statement ran (or failed): the handler's service path answers,
                # without running it a second time.
                state["compiled_missed"] = True
            await self.app(scope, receive, send)
            return
        assert found is not None
        if plan.route is None:  # what routing would have set, for the access log and metrics
            scope["route"] = template = route_of(scope["path"])
            plan.route = Route(template.path_format, front_route_of(scope))
        scope["route"] = plan.route
        conditional = False
        for name, _ in scope["headers"]:
            if name == b"if-none-match":
                conditional = True
                break
        key = (
            None
            if conditional
            else (
                plan,
                params,
                scope["path"],
                scope["query_string"],
                scope.get("scheme"),
                _host(scope),
                scope.get("root_path"),
                scope.get("server"),
            )
        )
        memo = None if key is None else self.memo.get(key, count=False)
        if memo is None or memo[0] != raw:
            response = plan.respond(Request(scope), orjson.loads(raw))
            memo = (raw, response.status_code, tuple(response.raw_headers), response.body)
            if key is not None:
                self.memo.put(key, memo)
        await send({"type": "http.response.start", "status": memo[1], "headers": memo[2]})
        await send({"type": "http.response.body", "body": memo[3]})

    async def _graphql(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        actor = state.get("actor")
        media = None
        if actor is not None and state.get("identity_error") is None:
            media = _media(scope)
        if media is None:
            await self.app(scope, receive, send)
            return
        body, receive = await read_body(receive, MAX_LANE_BODY)
        payload = None if body is None else await self._answer(body, actor, media, state)
        if payload is None:
            await self.app(scope, receive, send)
            return
        plan_operation, content, headers = payload
        scope["route"] = ROUTES[GRAPHQL_PATH]  # what routing would have set (access log)
        state["graphql"] = {"name": plan_operation, "type": "query", "outcome": "ok"}
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _answer(
        self,
        body: bytes,
        actor: Any,
        media: str,
        state: dict[str, Any],
    ) -> tuple[str | None, bytes, tuple[tuple[bytes, bytes], ...]] | None:
        """The operation's name, the body and its headers (a tuple, the same object while
        the memo stands, as a REST plan's: the front door keeps its work on them by it)."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict) or not request.keys() <= _FIELDS:
            return None
        found = self.plans.find(
            request.get("query"), request.get("operationName"), request.get("variables"), actor
        )
        if found is None:
            return None
        plan, params = found
        key = (plan, params)
        # From here on the statement runs: if the pipeline must answer (an object not
        # found), it does so without running the statement a second time.
        state["compiled_missed"] = True
        try:
            raw = await fetch_raw(self.state.db, plan.compiled.sql, params)
            memo = self.memo.get(key, count=False)
            if memo is not None and memo[0] == raw:
                state.pop("compiled_missed", None)
                return plan.operation, memo[1], memo[2][media]
            data = None if raw is None else compiled_data(plan.compiled, orjson.loads(raw))
        except Unavailable:
            raise  # the front door answers 503: the pipeline would find it down too
        except Exception:
            # A bug here must not become the answer: log it, and let the pipeline answer.
            log.exception("compiled_lane_failed")
            return None
        if data is None:
            return None
        content = orjson.dumps({"data": data})
        length = (b"content-length", str(len(content)).encode())
        # The same bytes in either media type: only Content-Type tells them apart.
        headers: dict[str, tuple[tuple[bytes, bytes], ...]] = {
            each: (length, (b"content-type", RAW_CONTENT_TYPES[each])) for each in CONTENT_TYPES
        }
        self.memo.put(key, (raw, content, headers))
        state.pop("compiled_missed", None)
        return plan.operation, content, headers[media]


def _host(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"host":
            host: bytes = value
            return host
    return None
