"""Persisted GraphQL documents: automatic persisted queries and the allow-list.

Automatic persisted queries (the Apollo protocol): a request whose ``extensions`` carry
``{"persistedQuery": {"version": 1, "sha256Hash": H}}`` and no query runs the document
stored under ``H``, or is answered ``PERSISTED_QUERY_NOT_FOUND`` so the client sends it
again with the query; with the query, the hash is checked and the document stored. The
store is Redis when ``REDIS_URL`` is set (shared by every worker) and a bounded
in-process map otherwise; a Redis failure makes a lookup miss, never an error.

The allow-list is a manifest written by ``gateway persist-queries``; in allow-list mode
only its documents run, and nothing can be registered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cachetools import LRUCache
from graphql import GraphQLError, parse, validate

MANIFEST_FORMAT = "apollo-persisted-query-manifest"
IN_PROCESS_ENTRIES = 2000
REDIS_TTL_SECONDS = 7 * 86400


def sha256_of(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


class Store(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, query: str) -> None: ...


class MemoryStore:
    """The most recently used documents, at most ``size`` of them."""

    def __init__(self, size: int = IN_PROCESS_ENTRIES) -> None:
        self.size = size
        self.entries: LRUCache[str, str] = LRUCache(size)

    async def get(self, key: str) -> str | None:
        return self.entries.get(key)

    async def put(self, key: str, query: str) -> None:
        self.entries[key] = query


class RedisStore:
    """Documents in Redis under ``prefix + hash``; an unreachable Redis is a miss.

    ``client`` is the process's Redis client (redis-py's ``get``/``set``), shared with
    the cache and the rate limits and closed by whoever made it."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def get(self, key: str) -> str | None:
        try:
            value = await self.client.get(self.prefix + key)
        except Exception:  # Redis down: the client resends the query, which still works
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else value

    async def put(self, key: str, query: str) -> None:
        try:
            await self.client.set(self.prefix + key, query, ex=REDIS_TTL_SECONDS)
        except Exception:
            pass


@dataclass
class Persisted:
    """The request side: resolves a request's document or says why it may not run."""

    store: Store = field(default_factory=MemoryStore)
    allowlist: Mapping[str, str] = field(default_factory=dict)
    allowlist_only: bool = False

    async def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()

    async def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> str | None:
        """The document to run, or ``GraphQLError`` raised with the code to answer."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if query is not None and self.allowlist_only and sha256_of(query) not in self.allowlist:
                raise _error(
                    "QUERY_NOT_IN_SAFELIST",
                    "Only operations in the allow-list may run here; send the "
                    "persisted query's sha256Hash.",
                )
            return query
        if (
            not isinstance(persisted, dict)
            or persisted.get("version") != 1
            or not isinstance(persisted.get("sha256Hash"), str)
        ):
            raise _error(
                "BAD_USER_INPUT", 'persistedQuery must be {"version": 1, "sha256Hash": "..."}.'
            )
        digest = persisted["sha256Hash"].lower()
        known = self.allowlist.get(digest)
        if known is None and not self.allowlist_only:
            known = await self.store.get(digest)
        if query is None:
            if known is None:
                if self.allowlist_only:
                    raise _error(
                        "PERSISTED_QUERY_NOT_IN_LIST",
                        "No operation in the allow-list has this hash.",
                    )
                raise _error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
            return known
        if sha256_of(query) != digest:
            raise _error("BAD_USER_INPUT", "The sha256Hash does not match the query.")
        if known is None:
            if self.allowlist_only:
                raise _error(
                    "PERSISTED_QUERY_NOT_IN_LIST", "Only operations in the allow-list may run here."
                )
            await self.store.put(digest, query)
        return query


def _error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def load_manifest(path: Path) -> dict[str, str]:
    """``{sha256: document}`` from a manifest file, or from a directory of ``.graphql``."""
    if path.is_dir():
        return {
            sha256_of(text): text
            for text in (p.read_text(encoding="utf-8") for p in sorted(path.glob("**/*.graphql")))
        }
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT:
        return {op["id"]: op["body"] for op in data.get("operations", [])}
    raise ValueError(f"{path} is not a persisted query manifest")


def build_manifest(documents: Mapping[str, str], schema: Any) -> dict[str, Any]:
    """A manifest of ``documents`` (name -> text), each checked against ``schema``."""
    operations = []
    for name, text in documents.items():
        errors: list[GraphQLError]
        try:
            errors = validate(schema, parse(text))
        except GraphQLError as exc:
            errors = [exc]
        if errors:
            raise ValueError(f"{name}: {errors[0].message}")
        kind = next(
            (d.operation.value for d in parse(text).definitions if hasattr(d, "operation")), "query"
        )
        operations.append({"id": sha256_of(text), "name": name, "type": kind, "body": text})
    return {"format": MANIFEST_FORMAT, "version": 1, "operations": operations}
