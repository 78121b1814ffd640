"""Rate limits: a token bucket per principal and policy, spent by what a request costs.

A pure ASGI middleware inside the identity middleware (it needs ``state["actor"]``). The
principal is the API key, the user, or for anonymous callers the client address (the
peer; ``X-Forwarded-For`` only from ``RATE_LIMIT_TRUSTED_PROXIES``). What a request costs:

- GraphQL: the estimated objects the operation may return (``resolvers/cost.py``), at
  least 1; a batch spends the sum; a document that does not parse spends 1 and is left to
  the GraphQL layer to refuse. ``register``/``login``/``refreshToken``/``logout`` fields
  also spend 1 each from the stricter ``auth`` policy.
- REST: 1, and a list page of N (``GET`` on a collection) 1 + N, as its GraphQL twin;
  ``/api/v*/auth/*`` spends 1 from ``auth`` instead of ``default``.

A cost above a bucket's size spends the whole bucket (it needs a full one). Refused
requests spend nothing and answer 429 ``RATE_LIMITED`` with ``Retry-After`` and the
``RateLimit-Policy``/``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers-10;
answered requests carry those fields too. See docs/operations.md, "Rate limits".
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from cachetools import LRUCache
from fastapi import FastAPI
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    parse,
)
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data.actor import Actor, ActorKind
from data.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from data.passwords import configure_hashing
from gateway.http.problems import problem_response
from gateway.ratelimit.buckets import Backoff, Level, Spend, Store
from gateway.ratelimit.login_backoff import attempts_for
from gateway.redis_client import slot_prefix
from gateway.settings import Settings
from resolvers.core_schema import core_schema
from resolvers.cost import estimate_cost
from resolvers.media import GRAPHQL_RESPONSE, JSON, RAW_CONTENT_TYPES, media_of_headers
from resolvers.schema import schema

AUTH_FIELDS = frozenset({"register", "login", "refreshToken", "logout"})
AUTH_PATH = re.compile(r"^/api/v\d+/auth(/|$)")
LIST_PATH = re.compile(
    r"^/api/v\d+/(?:products|categories|users|orders|api-keys|products/[^/]+/reviews)/?$"
)
EXEMPT_PREFIXES = ("/health/", "/metrics")
MAX_BODY = 1 << 20  # larger GraphQL bodies are not read here: body limits refuse them
MAX_TOKENS = 20_000  # parsing stays bounded; longer documents spend 1 (the token limit's)
PARSE_CACHE_SIZE = 512
MAX_CACHED_TEXT = 100_000


@dataclass(frozen=True)
class Policy:
    name: str
    capacity: int
    rate: float  # tokens a second

    @property
    def window(self) -> int:
        """Seconds an empty bucket takes to fill: the ``w`` of ``RateLimit-Policy``."""
        return max(1, round(self.capacity / self.rate))

    def describe(self) -> str:
        return f'"{self.name}";q={self.capacity};w={self.window}'


def policies_of(settings: Settings) -> dict[str, Policy]:
    def policy(name: str, per_minute: int, burst: int | None) -> Policy:
        return Policy(name, burst or per_minute, per_minute / 60)

    return {
        "default": policy("default", settings.rate_limit_per_minute, settings.rate_limit_burst),
        "auth": policy("auth", settings.auth_rate_limit_per_minute, settings.auth_rate_limit_burst),
    }


def principal_of(actor: Actor | None, client: str) -> str:
    """The bucket owner: the API key, the user, else the client address."""
    if actor is not None and actor.kind is ActorKind.USER:
        return f"user:{actor.user_id}"
    if actor is not None and actor.kind is ActorKind.API_KEY:
        return f"key:{actor.api_key_id}"
    return f"ip:{client}"


class ClientAddress:
    """The caller's address: the peer, or from a trusted proxy the nearest untrusted hop
    of ``X-Forwarded-For`` (read right to left: only trusted proxies appended to it)."""

    def __init__(self, trusted: list[str]) -> None:
        self.trusted = [ipaddress.ip_network(item, strict=False) for item in trusted]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        if not self.trusted or not self._is_trusted(peer):
            return peer
        forwarded = b",".join(v for k, v in scope["headers"] if k == b"x-forwarded-for")
        hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # a malformed chain: trust nothing in it
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


class GraphQLCosts:
    """What GraphQL payloads cost, with parsed documents cached by their text."""

    def __init__(self) -> None:
        self._documents: LRUCache[str, DocumentNode | None] = LRUCache(PARSE_CACHE_SIZE)
        # Persisted-query hash -> text seen with it, so a document later sent by hash
        # alone costs what its text did (unknown hashes spend 1).
        self._persisted: LRUCache[str, str] = LRUCache(PARSE_CACHE_SIZE)

    def _text(self, payload: dict[str, Any]) -> str | None:
        query = payload.get("query")
        extensions = payload.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not isinstance(digest, str) or len(digest) > 128:
            return query if isinstance(query, str) else None
        if isinstance(query, str):
            # Only a true hash is remembered: a cheap text must not stand in for a dear one.
            if (
                len(query) <= MAX_CACHED_TEXT
                and hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()
                == digest.lower()
            ):
                self._persisted[digest] = query
            return query
        return self._persisted.get(digest)

    def document(self, text: str) -> DocumentNode | None:
        cached = self._documents.get(text, ...)
        if cached is not ...:
            return cached
        try:
            document: DocumentNode | None = parse(text, max_tokens=MAX_TOKENS)
        except Exception:  # GraphQLError, RecursionError: the GraphQL layer will refuse it
            document = None
        if len(text) <= MAX_CACHED_TEXT:
            self._documents[text] = document
        return document

    def operation(self, payload: Any) -> tuple[int, int]:
        """(cost, auth fields) of one GraphQL request object."""
        text = self._text(payload) if isinstance(payload, dict) else None
        if text is None:
            return 1, 0
        document = self.document(text)
        if document is None:
            return 1, 0
        variables = payload.get("variables")
        name = payload.get("operationName")
        name = name if isinstance(name, str) else None
        try:
            cost = estimate_cost(
                core_schema(schema),
                document,
                variables if isinstance(variables, dict) else {},
                name,
            )
        except Exception:  # an odd document the GraphQL layer will refuse
            cost = 1
        return max(1, cost), _auth_fields(document, name)


def _auth_fields(document: DocumentNode, name: str | None) -> int:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [op for op in operations if op.name and op.name.value == name]
    if len(operations) != 1 or operations[0].operation is not OperationType.MUTATION:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }

    def count(selections: tuple[SelectionNode, ...], seen: frozenset[str]) -> int:
        total = 0
        for node in selections:
            if isinstance(node, FieldNode):
                total += node.name.value in AUTH_FIELDS
            elif isinstance(node, InlineFragmentNode):
                total += count(tuple(node.selection_set.selections), seen)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                fragment = fragments.get(node.name.value)
                if fragment is not None:
                    total += count(
                        tuple(fragment.selection_set.selections), seen | {node.name.value}
                    )
        return total

    return count(tuple(operations[0].selection_set.selections), frozenset())


def _rest_cost(scope: Scope) -> int:
    if scope["method"] != "GET" or not LIST_PATH.match(scope["path"]):
        return 1
    limit = parse_qs(scope["query_string"].decode("latin-1")).get("limit", [""])[-1]
    size = int(limit) if limit.isdigit() else DEFAULT_PAGE_SIZE
    return 1 + min(max(size, 1), MAX_PAGE_SIZE)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request body (None past ``MAX_BODY``) and the messages to replay to the app."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > MAX_BODY:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def receive_again() -> Message:
        return messages.pop(0) if messages else await receive()

    return receive_again


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, store: Store) -> None:
        self.app = app
        self.store = store
        self.policies = policies_of(settings)
        self.client_address = ClientAddress(settings.rate_limit_trusted_proxies)
        self.costs = GraphQLCosts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        graphql = path.rstrip("/") == "/graphql"
        costs: dict[str, int] = {}
        batch: int | None = None
        each: list[tuple[int, int]] = []  # (cost, auth) of each GraphQL operation
        if graphql:
            payloads, batch, receive = await self._graphql_payloads(scope, receive)
            for payload in payloads:
                cost, auth = self.costs.operation(payload)
                each.append((cost, auth))
                costs["default"] = costs.get("default", 0) + cost
                if auth:
                    costs["auth"] = costs.get("auth", 0) + auth
            costs.setdefault("default", 1)
        elif AUTH_PATH.match(path):
            costs["auth"] = 1
        else:
            costs["default"] = _rest_cost(scope)

        state = scope.setdefault("state", {})
        principal = principal_of(state.get("actor"), self.client_address(scope))
        charged = [(self.policies[name], cost) for name, cost in costs.items()]
        spends = [
            Spend(
                f"{policy.name}:{principal}",
                policy.capacity,
                policy.rate,
                min(cost, policy.capacity),
            )
            for policy, cost in charged
        ]
        ok, levels = await self.store.take(spends)
        headers = _headers(charged, levels)
        if not ok:
            await self._refuse(
                scope, receive, send, charged, levels, headers, graphql=graphql, batch=batch
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in headers.items():
                    response_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
        unspent = _unspent(state, charged, each)
        if unspent:
            await self.store.give_back(
                [
                    Spend(f"{policy.name}:{principal}", policy.capacity, policy.rate, cost)
                    for policy, cost in unspent
                ]
            )

    async def _graphql_payloads(
        self, scope: Scope, receive: Receive
    ) -> tuple[list[Any], int | None, Receive]:
        """The request objects to cost, the batch size (None: not a batch), the receive."""
        if scope["method"] == "GET":
            query = parse_qs(scope["query_string"].decode("latin-1"))
            payload: dict[str, Any] = {
                "query": query.get("query", [None])[-1],
                "operationName": query.get("operationName", [None])[-1],
            }
            try:
                payload["variables"] = orjson.loads(query.get("variables", ["{}"])[-1])
            except orjson.JSONDecodeError:
                payload["variables"] = {}
            return [payload], None, receive
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if scope["method"] != "POST" or b"json" not in content_type.lower():
            return [None], None, receive
        messages, body = await _read_body(receive)
        receive = _replay(messages, receive)
        try:
            parsed = orjson.loads(body) if body is not None else None
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and parsed:
            return parsed, len(parsed), receive
        return [parsed], None, receive

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        charged: list[tuple[Policy, int]],
        levels: list[Level],
        headers: dict[str, str],
        *,
        graphql: bool,
        batch: int | None,
    ) -> None:
        index = next(i for i, level in enumerate(levels) if level.retry_ms > 0)
        policy, cost = charged[index]
        retry_after = max(1, math.ceil(levels[index].retry_ms / 1000))
        headers["Retry-After"] = str(retry_after)
        metrics = getattr(scope["app"].state, "metrics", None)
        if metrics is not None:
            metrics.rate_limited.labels(policy.name).inc()
        detail = (
            f"Rate limit '{policy.name}' exceeded: this request costs {cost} of "
            f"{policy.capacity} per {policy.window} s; retry in {retry_after} s."
        )
        request = Request(scope)
        if not graphql:
            response = problem_response(
                request,
                status=429,
                code="RATE_LIMITED",
                title="Too many requests",
                detail=detail,
                headers=headers,
            )
            await response(scope, receive, send)
            return
        error = {
            "message": detail,
            "extensions": {
                "code": "RATE_LIMITED",
                "policy": policy.name,
                "cost": cost,
                "retryAfter": retry_after,
                "request_id": scope["state"].get("request_id"),
            },
        }
        # Refused before it ran: under application/graphql-response+json, no data entry.
        media = media_of_headers(scope["headers"]) or JSON
        result: dict[str, Any] = (
            {"errors": [error]} if media == GRAPHQL_RESPONSE else {"data": None, "errors": [error]}
        )
        body = orjson.dumps([result] * batch if batch else result)
        start: Message = {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", RAW_CONTENT_TYPES[media]),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _unspent(
    state: dict[str, Any], charged: list[tuple[Policy, int]], each: list[tuple[int, int]]
) -> list[tuple[Policy, int]]:
    """What a request was charged for work that never ran: a REST request refused before
    its handler (``state["refused"]``), GraphQL operations refused before execution
    (``state["graphql_refused"]``: one flag per operation, in order)."""
    if state.get("refused"):
        return [(policy, min(cost, policy.capacity)) for policy, cost in charged]
    flags = state.get("graphql_refused")
    if not flags or not any(flags) or len(flags) != len(each):
        return []
    back = {
        "default": sum(c for (c, _), no in zip(each, flags, strict=True) if no),
        "auth": sum(a for (_, a), no in zip(each, flags, strict=True) if no),
    }
    return [
        (policy, min(back.get(policy.name, 0), cost, policy.capacity))
        for policy, cost in charged
        if back.get(policy.name, 0) > 0
    ]


def _headers(charged: list[tuple[Policy, int]], levels: list[Level]) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers-10)."""
    return {
        "RateLimit-Policy": ", ".join(policy.describe() for policy, _ in charged),
        "RateLimit": ", ".join(
            f'"{policy.name}";r={level.remaining};t={math.ceil(level.reset_ms / 1000)}'
            for (policy, _), level in zip(charged, levels, strict=True)
        ),
    }


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    """The limiter middleware and the login backoff store; add it inside identity."""
    configure_hashing(settings.password_hash_threads, settings.password_hash_queue)

    def login_refused() -> None:
        metrics = getattr(app.state, "metrics", None)
        if metrics is not None:
            metrics.rate_limited.labels("login").inc()

    store = Store(
        app.state.redis_commands,
        slot_prefix(settings.rate_limit_key_prefix, settings),
        Backoff(
            settings.login_backoff_failures,
            settings.login_backoff_window_seconds,
            settings.login_backoff_base_seconds,
            settings.login_backoff_max_seconds,
        ),
        on_login_refused=login_refused,
    )
    app.state.rate_limits = store  # closed by the app's lifespan
    app.state.login_attempts_for = attempts_for(
        store,
        ClientAddress(settings.rate_limit_trusted_proxies),
        settings.login_slowdown_failures,
        settings.login_slowdown_seconds,
    )
    if settings.rate_limit_enabled:
        app.add_middleware(RateLimitMiddleware, settings=settings, store=store)
