"""The compiled lane: repeats of compiled GraphQL reads, answered without the framework.

A catalog page is asked again and again with the same document and variables. The
first time, the full pipeline (FastAPI routing, Strawberry's parse, validation, limits
and extensions, ``resolvers.compiled.CompiledReads``) admits it and answers it with one
SQL statement; ``LanePlans`` remembers that statement under everything that decided the
answer. A repeat then costs the statement and one ``orjson.dumps``: this middleware, the
innermost of the stack (identity, rate limits, the response cache, request limits, the
access log and metrics all still run around it), runs the remembered statement and
sends ``{"data": ...}`` exactly as the GraphQL router would have.

What PostgreSQL answers is the whole input of the answer: each plan keeps the last
text the statement returned with the answer made from it, so a repeat that finds the
same text sends the same bytes again without parsing and re-encoding them (a REST
request with ``If-None-Match`` is answered afresh, for its 304).

Anything else goes down the stack untouched: another method or path, a body that is not
a single operation of only ``query``/``operationName``/``variables``, an identity error,
a plan nobody remembered, a root object the statement no longer finds (the resolver
path answers its ``NOT_FOUND``), or a failure of the statement (logged; the reference
answers). ``tests/test_compiled_lane.py`` holds its answers to the pipeline's, byte for
byte, headers included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from data.compiled import compiled_data, fetch_raw
from data.errors import Unavailable
from gateway.cache_asgi import GRAPHQL_PATH, ROUTES, Route, read_body, route_of
from gateway.front import route_of as front_route_of
from resolvers.compiled import LanePlans
from rest.compiled import RestPlans

log = logging.getLogger("gateway.graphql")
MAX_LANE_BODY = 64 * 1024  # a catalog page's document is a few hundred bytes
_FIELDS = frozenset({"query", "operationName", "variables"})


def _json_content(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


class CompiledLane:
    def __init__(self, app: ASGIApp, plans: LanePlans, rest_plans: RestPlans,
                 state: Any) -> None:
        self.app = app
        self.plans = plans
        self.rest_plans = rest_plans
        self.state = state  # the app's state: its database exists once the lifespan ran

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: the branch's is the caller's to await, one frame fewer
        # for every suspension of the request to pass through (issue 9).
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
        plan = None
        if actor is not None and state.get("identity_error") is None:
            plan = self.rest_plans.find(scope, actor)
        raw = None
        if plan is not None:
            try:
                raw = await fetch_raw(self.state.db, plan.sql, plan.params)
            except Unavailable:
                raise  # the front door answers 503: the handler would find it down too
            except Exception:
                log.exception("compiled_lane_failed")
        if raw is None:  # not remembered, failed, or not found: the handler answers
            await self.app(scope, receive, send)
            return
        assert plan is not None
        if plan.route is None:  # what routing would have set, for the access log and metrics
            scope["route"] = template = route_of(scope["path"])
            plan.route = Route(template.path_format, front_route_of(scope))
        scope["route"] = plan.route
        conditional = False
        for name, _ in scope["headers"]:
            if name == b"if-none-match":
                conditional = True
                break
        memo = plan.memo
        if memo is None or memo[0] != raw or conditional:
            response = plan.respond(Request(scope), orjson.loads(raw))
            memo = (raw, response.status_code, tuple(response.raw_headers), response.body)
            if not conditional:
                plan.memo = memo
        await send({"type": "http.response.start", "status": memo[1], "headers": memo[2]})
        await send({"type": "http.response.body", "body": memo[3]})

    async def _graphql(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        actor = state.get("actor")
        if actor is None or state.get("identity_error") is not None or not _json_content(scope):
            await self.app(scope, receive, send)
            return
        body, receive = await read_body(receive, MAX_LANE_BODY)
        payload = None if body is None else await self._answer(body, actor)
        if payload is None:
            await self.app(scope, receive, send)
            return
        plan_operation, content, headers = payload
        scope["route"] = ROUTES[GRAPHQL_PATH]  # what routing would have set (access log)
        state["graphql"] = {"name": plan_operation, "type": "query", "outcome": "ok"}
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, body: bytes, actor: Any,
                      ) -> tuple[str | None, bytes, tuple[tuple[bytes, bytes], ...]] | None:
        """The operation's name, the body and its headers (a tuple, the same object while
        the memo stands, as a REST plan's: the front door keeps its work on them by it)."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict) or not request.keys() <= _FIELDS:
            return None
        plan = self.plans.get(self.plans.key(request.get("query"), request.get("operationName"),
                                             request.get("variables"), actor))
        if plan is None:
            return None
        try:
            raw = await fetch_raw(self.state.db, plan.compiled.sql, plan.compiled.params)
            memo = plan.memo
            if memo is not None and memo[0] == raw:
                return plan.operation, memo[1], memo[2]
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
        headers = ((b"content-length", str(len(content)).encode()),
                   (b"content-type", b"application/json"))
        plan.memo = (raw, content, headers)
        return plan.operation, content, headers
