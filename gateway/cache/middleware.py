"""The response cache: catalog reads shared by everyone of one visibility class.

``CacheMiddleware`` is pure ASGI and sits just inside ``IdentityMiddleware`` (it needs the
actor): a hit is answered before FastAPI routing or Strawberry run. What is shareable:

- REST ``GET /api/v{1,2}/products[/{id}[/reviews]]`` and ``/categories[/{slug}]``;
- GraphQL queries (POST JSON or GET) whose every field is a public catalog field
  (``gateway.cache.documents``).

Everything else, a failed credential and an unreachable Redis are ``BYPASS`` (the
front door's default ``X-Cache``, for whatever the cache does not answer). The key is
the visibility class, the interface's request (normalized document, operation name,
variables and the media type negotiated from ``Accept``; or scheme, host, path and
query, the API version being in the path) and the versions of the tags the entry
depends on, so a write (``ResponseCache.invalidate``, a ``Database`` commit listener)
makes older entries unreachable before it returns.

Which tags an entry depends on is decided from the request and the class alone, before
the answer is computed (``entry_tags``; the vocabulary is in ``data.changes``): a
product's detail page, its reviews and a GraphQL ``product(id:)`` depend on that
product; everything else on every product's visible changes (``lists``); classes that
see ``stock`` also on its movements. The versions are read at the lookup, so an answer
computed while a write commits is stored under versions that are already stale.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog
from graphql import GraphQLSchema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data.actor import Actor
from data.changes import CATALOG, LISTS, STOCK, Changes, product_tag, stock_tag
from data.db import Database
from data.errors import Invalid
from data.policy import can_read_stock, visibility_class
from gateway.cache.asgi import GRAPHQL_PATH, mark_hit, read_body, send_entry
from gateway.cache.courier import InvalidationCourier
from gateway.cache.documents import DocumentPolicy, ProductId
from gateway.cache.store import Entry, MemoryStore, RedisStore, StoreUnavailable
from gateway.redis_client import Commands, slot_prefix
from gateway.settings import Settings
from resolvers.ids import database_id_of
from resolvers.media import media_of_headers

log = structlog.get_logger("gateway.cache")

REST_PATH = re.compile(r"^/api/v[12]/(?:products(?:/[^/]+(?:/reviews)?)?|categories(?:/[^/]+)?)$")
# A product's own pages, when its id is written the one way the router reads it.
REST_PRODUCT_PATH = re.compile(r"^/api/v[12]/products/([1-9][0-9]{0,17})(?:/reviews)?$")
HIT = (b"x-cache", b"HIT")
MISS = (b"x-cache", b"MISS")
KEPT_HEADERS = frozenset({b"content-type", b"etag", b"link"})
MAX_GRAPHQL_BODY = 65_536
GRAPHQL_KEYS = frozenset({"query", "variables", "operationName"})


def entry_tags(product_ids: list[int] | None, stock: bool) -> tuple[str, ...]:
    """The tags an entry depends on: the products it can show (``None``: any) and
    whether it shows ``stock`` (only to the classes that may read it)."""
    if product_ids is None:
        return (CATALOG, LISTS, STOCK) if stock else (CATALOG, LISTS)
    ids = sorted(set(product_ids))
    tags = [CATALOG, *map(product_tag, ids)]
    if stock:
        tags.extend(map(stock_tag, ids))
    return tuple(tags)


def _product_id(source: ProductId, variables: dict[str, Any]) -> int | None:
    """The database id a ``product(id:)`` root asks for, read as the resolver reads it;
    ``None`` when it is not one (the answer is an error, or null for every id)."""
    raw = variables.get(source.value) if source.variable else source.value
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    if not isinstance(raw, str):
        return None
    try:
        return database_id_of("Product", raw)
    except Invalid:
        return None


class ResponseCache:
    """The store, the document policy, the in-flight recomputes and the counters."""

    def __init__(self, settings: Settings, schema: GraphQLSchema) -> None:
        self.settings = settings
        # Without Redis, each worker's cache would miss the others' writes.
        self.enabled = settings.cache_enabled and (
            settings.redis_url is not None or settings.web_concurrency == 1
        )
        # Entries and tag versions share the prefix; in a Cluster it is a hash tag, so a
        # lookup's script finds all of them in one slot.
        self.prefix = slot_prefix(settings.cache_prefix, settings)
        self.ttl = settings.cache_ttl_seconds
        self.policy = DocumentPolicy(schema)
        self.store: MemoryStore | RedisStore = MemoryStore(settings.cache_max_entries)
        self.courier: InvalidationCourier | None = None
        self.inflight: dict[str, asyncio.Future[Entry | None]] = {}
        self.counters: dict[tuple[str, str], Any] = {}
        self.metrics: Any = None

    async def start(self, db: Database, metrics: Any = None, redis: Commands | None = None) -> None:
        """Puts the entries in Redis when the app has a client (``gateway.redis_client``)."""
        if redis is not None:
            self.store = RedisStore(
                redis,
                self.prefix,
                retry_seconds=self.settings.cache_redis_retry_seconds,
            )
            # Even with this instance's cache off: it relays what others could not send.
            self.courier = InvalidationCourier(
                self.store,
                db.engine.url.render_as_string(hide_password=False),
                poll_seconds=self.settings.cache_outbox_poll_seconds,
                trust_seconds=self.settings.cache_trust_seconds,
                metrics=metrics,
            )
            await self.courier.start()
        db.on_commit(self.invalidate)
        if metrics is not None:
            self.metrics = metrics
            for result, counter in (
                ("hit", metrics.cache_hits),
                ("miss", metrics.cache_misses),
                ("bypass", metrics.cache_bypasses),
            ):
                for interface in ("rest", "graphql"):
                    self.counters[result, interface] = counter.labels(interface)

    async def close(self) -> None:
        if self.courier is not None:
            await self.courier.close()
        await self.store.close()

    async def invalidate(self, changes: Changes) -> None:
        """Bumps the versions of the tags a committed write touched."""
        if not changes.tags:
            return
        try:
            await self.store.bump(changes.tags)
        except StoreUnavailable as exc:
            # Kept as pending by the store: this process bypasses until it gets through,
            # and the courier tells the other instances through the database.
            log.warning("cache_invalidation_deferred", tags=sorted(changes.tags), error=str(exc))
            if self.courier is not None:
                await self.courier.undelivered(changes.tags)

    def count(self, result: str, interface: str) -> None:
        counter = self.counters.get((result, interface))
        if counter is not None:
            self.metrics.count(counter)


class CacheMiddleware:
    def __init__(self, app: ASGIApp, cache: ResponseCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        method = scope["method"]
        if path == GRAPHQL_PATH:
            interface = "graphql"
        elif path.startswith("/api/"):
            interface = "rest"
        else:
            await self.app(scope, receive, send)
            return
        cache = self.cache
        state = scope.get("state") or {}
        actor: Actor | None = state.get("actor")
        keyed: tuple[str, tuple[str, ...]] | None = None
        if cache.enabled and actor is not None and state.get("identity_error") is None:
            stock = can_read_stock(actor)
            if interface == "rest":
                if method == "GET" and REST_PATH.match(path):
                    keyed = self._rest_base(scope, stock)
            elif method == "POST":
                body, receive = await read_body(receive, MAX_GRAPHQL_BODY)
                keyed = self._graphql_post_base(scope, body, stock)
            elif method == "GET":
                keyed = self._graphql_get_base(scope, stock)
        if keyed is None or actor is None:
            cache.count("bypass", interface)
            await self.app(scope, receive, send)
            return
        base, tags = keyed
        key_base = f"{cache.prefix}r:{visibility_class(actor)}:{base}:"
        await self._cached(scope, receive, send, interface, key_base, tags)

    # -- keys -------------------------------------------------------------------------

    def _rest_base(self, scope: Scope, stock: bool) -> tuple[str, tuple[str, ...]]:
        """The key's request part and the entry's tags."""
        own = REST_PRODUCT_PATH.match(scope["path"])
        tags = entry_tags([int(own[1])] if own else None, stock)
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        query = scope["query_string"]
        if query:
            # Stable by name only: for a repeated parameter the order is meaningful.
            pairs = sorted(
                parse_qsl(query.decode("latin-1"), keep_blank_values=True), key=lambda pair: pair[0]
            )
            query = orjson.dumps(pairs)
        # The host and scheme are in the key because Link headers carry them.
        raw = b"\x00".join((scope["scheme"].encode(), host, scope["path"].encode(), query))
        return "rest:" + hashlib.blake2b(raw, digest_size=16).hexdigest(), tags

    def _graphql_base(
        self,
        scope: Scope,
        method: bytes,
        query: Any,
        operation_name: Any,
        variables: Any,
        stock: bool,
    ) -> tuple[str, tuple[str, ...]] | None:
        if not isinstance(query, str) or not (
            operation_name is None or isinstance(operation_name, str)
        ):
            return None
        # The answer's media type (its Content-Type) is part of the key; a request that
        # accepts neither is the router's 406.
        media = media_of_headers(scope["headers"])
        if media is None:
            return None
        if variables is None:
            variables = {}
        elif not isinstance(variables, dict):
            return None
        shareable = self.cache.policy.shareable(query, operation_name)
        if shareable is None:
            return None
        try:
            dumped = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # nested past orjson's depth: no entry for it
            return None
        scope["state"]["graphql_hit"] = {
            "name": shareable.operation,
            "type": "query",
            "outcome": "ok",
        }
        raw = b"\x00".join(
            (method, media.encode(), shareable.digest, (operation_name or "").encode(), dumped)
        )
        ids: list[int] | None = None
        if shareable.products is not None:
            found = [_product_id(source, variables) for source in shareable.products]
            ids = None if None in found else [i for i in found if i is not None]
        tags = entry_tags(ids, stock and shareable.stock)
        return "gql:" + hashlib.blake2b(raw, digest_size=16).hexdigest(), tags

    def _graphql_post_base(
        self, scope: Scope, body: bytes | None, stock: bool
    ) -> tuple[str, tuple[str, ...]] | None:
        if body is None:
            return None
        for name, value in scope["headers"]:
            if name == b"content-type":
                if not value.split(b";")[0].strip().lower() == b"application/json":
                    return None
                break
        else:
            return None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        # Batches, persisted-query hashes and other extensions go through uncached.
        if not isinstance(payload, dict) or not GRAPHQL_KEYS.issuperset(payload):
            return None
        return self._graphql_base(
            scope,
            b"POST",
            payload.get("query"),
            payload.get("operationName"),
            payload.get("variables"),
            stock,
        )

    def _graphql_get_base(self, scope: Scope, stock: bool) -> tuple[str, tuple[str, ...]] | None:
        params: dict[str, str] = {}
        for name, value in parse_qsl(
            scope["query_string"].decode("latin-1"), keep_blank_values=True
        ):
            if name in params or name not in GRAPHQL_KEYS:
                return None
            params[name] = value
        variables: Any = None
        if params.get("variables"):
            try:
                variables = orjson.loads(params["variables"])
            except orjson.JSONDecodeError:
                return None
        return self._graphql_base(
            scope, b"GET", params.get("query"), params.get("operationName"), variables, stock
        )

    # -- lookup, collapse, compute ------------------------------------------------------

    async def _cached(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        interface: str,
        key_base: str,
        tags: tuple[str, ...],
    ) -> None:
        cache = self.cache
        store = cache.store
        wanted = None
        if interface == "rest":
            for name, value in scope["headers"]:
                if name == b"if-none-match":
                    wanted = value
                    break
        try:
            stamp, entry = await store.lookup(key_base, tags)
        except StoreUnavailable:
            cache.count("bypass", interface)
            await self.app(scope, receive, send)
            return
        if entry is not None:
            cache.count("hit", interface)
            mark_hit(scope, interface)
            await send_entry(send, entry, HIT, wanted)
            return
        key = key_base + stamp
        running = cache.inflight.get(key)
        if running is not None:
            # Someone in this process is computing the same answer: wait for theirs.
            try:
                entry = await asyncio.wait_for(
                    asyncio.shield(running), cache.settings.cache_lock_seconds
                )
            except TimeoutError:
                entry = None
            if entry is not None:
                cache.count("hit", interface)
                mark_hit(scope, interface)
                await send_entry(send, entry, HIT, wanted)
                return
        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        cache.inflight.setdefault(key, future)
        entry = None
        try:
            entry = await self._compute(scope, receive, send, interface, key, wanted)
        finally:
            if cache.inflight.get(key) is future:
                del cache.inflight[key]
            future.set_result(entry)

    async def _compute(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        interface: str,
        key: str,
        wanted: bytes | None,
    ) -> Entry | None:
        """Runs the app (once per key across workers when Redis is shared), stores a
        shareable answer and sends it; returns the entry stored, if any."""
        cache = self.cache
        store = cache.store
        locked = False
        if store.shared:
            try:
                locked, entry = await store.claim(key, cache.settings.cache_lock_seconds)
                if entry is not None and locked:
                    await store.release(key)
                if entry is None and not locked:
                    entry = await self._wait_for(key)
                if entry is not None:
                    # Computed meanwhile, here or by another worker: served as a hit.
                    cache.count("hit", interface)
                    mark_hit(scope, interface)
                    await send_entry(send, entry, HIT, wanted)
                    return entry
            except StoreUnavailable:
                locked = False
        if wanted is not None:
            # Compute the full answer (to store it); the 304 is decided here.
            scope = dict(scope)
            scope["headers"] = [h for h in scope["headers"] if h[0] != b"if-none-match"]
        cache.count("miss", interface)
        start: Message = {}
        chunks: list[bytes] = []

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        entry = None
        try:
            await self.app(scope, receive, buffer)
            entry = self._entry(scope, start, b"".join(chunks))
            if entry is not None:
                # Stored before the lock goes: a worker polling sees one or the other.
                await store.put(key, entry, cache.ttl)
        except StoreUnavailable:
            pass
        finally:
            if locked:
                try:
                    await store.release(key)
                except StoreUnavailable:
                    pass
        if entry is not None:
            await send_entry(send, entry, MISS, wanted)
            return entry
        body = b"".join(chunks)
        headers = [*start.get("headers", ()), MISS]
        await send(
            {"type": "http.response.start", "status": start.get("status", 500), "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})
        return None

    def _entry(self, scope: Scope, start: Message, body: bytes) -> Entry | None:
        """A shareable answer: a 200 without GraphQL errors (they carry a request id)."""
        if start.get("status") != 200 or len(body) > self.cache.settings.cache_max_body_bytes:
            return None
        if scope["path"] == GRAPHQL_PATH and b'"errors":' in body:
            return None
        kept = [(n.lower(), v) for n, v in start.get("headers", ()) if n.lower() in KEPT_HEADERS]
        kept.append((b"content-length", str(len(body)).encode()))
        return Entry(200, tuple(kept), body)

    async def _wait_for(self, key: str) -> Entry | None:
        """Another worker holds the recompute lock: poll for its entry, briefly, and stop
        when the lock is gone without one (that answer was not shareable)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cache.settings.cache_lock_wait_seconds
        while loop.time() < deadline:
            await asyncio.sleep(0.02)
            entry, locked = await self.cache.store.poll(key)
            if entry is not None or not locked:
                return entry
        return None
