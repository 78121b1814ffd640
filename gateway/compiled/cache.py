"""Bounded caches for compiled plans and the answers made from them.

A plan is kept per operation shape (``gateway.compiled.graphql``, ``gateway.compiled.rest``), so the
number of plans follows the number of shapes clients send, not the number of requests:
a client that sends ten thousand different documents must not grow the process without
bound, nor push out the plans every other request uses. ``cachetools.LRUCache`` evicts
the least recently used entry one at a time (never the whole cache), and counts in
entries or, with ``getsizeof``, in bytes. Hits, misses and evictions are reported to
``record`` (the gateway counts them in ``/metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from cachetools import LRUCache

Record = Callable[[str], None]  # "hit", "miss" or "eviction"


def _ignore(event: str) -> None:
    """No recorder (a cache outside an app, as in tests of the planner alone)."""


class _Evicting(LRUCache[Hashable, Any]):
    """An LRU cache that tells who asked about every entry it evicts."""

    def __init__(
        self, maxsize: int, getsizeof: Callable[[Any], int] | None, evicted: Callable[[], None]
    ) -> None:
        super().__init__(maxsize, getsizeof)
        self._evicted = evicted

    def popitem(self) -> tuple[Hashable, Any]:
        item = super().popitem()
        self._evicted()
        return item


class BoundedCache:
    """An LRU map with counters; ``size`` is entries, or bytes when ``getsizeof`` is given.
    An entry larger than the whole cache is not kept (cachetools refuses it)."""

    def __init__(
        self, size: int, getsizeof: Callable[[Any], int] | None = None, record: Record | None = None
    ) -> None:
        self.record: Record = record or _ignore
        self.hits = self.misses = self.evictions = 0
        self._entries = _Evicting(max(1, size), getsizeof, self._evicted)

    def _evicted(self) -> None:
        self.evictions += 1
        self.record("eviction")

    def get(self, key: Hashable, *, count: bool = True) -> Any:
        """The entry (counted as a hit), or ``None`` (a miss); it is now the most recent."""
        found = self._entries.get(key)
        if not count:
            return found
        if found is None:
            self.misses += 1
            self.record("miss")
        else:
            self.hits += 1
            self.record("hit")
        return found

    def put(self, key: Hashable, value: Any) -> None:
        try:
            self._entries[key] = value
        except ValueError:  # larger than the whole cache: answered, not kept
            pass

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def currsize(self) -> int:
        """Entries, or bytes for a cache sized in bytes."""
        return int(self._entries.currsize)
