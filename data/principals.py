"""Principals remembered per process, so a signed-in request needs no database round trip.

An access token or API key, once resolved, is remembered with the principal keys that
can revoke it (``user:<id>``, ``login:<family>``, ``api_key:<id>``). A write that
deactivates a user, changes a role, ends a login or revokes a key records those keys
(``data.changes.principal_changed``); after its commit they are forgotten here at once
and published to every other process on the event bus, which forgets them too.

Three bounds keep a copy honest:

- an entry lives at most ``ttl`` seconds (what an instance that missed a message can
  trust; the bus drops and re-subscribes when its connection fails, and this cache stops
  trusting anything while the bus is not listening);
- an access token's own expiry is checked on every use;
- a resolution that raced a revocation is not stored (an epoch counts revocations: an
  answer read before one is not remembered after it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

from cachetools import TTLCache

from data.actor import Actor


class Remembered(NamedTuple):
    actor: Actor
    keys: frozenset[str]
    expires_at: float  # the credential's own expiry (wall clock), inf for API keys


class PrincipalCache:
    """Credentials (the secret string itself, held only in memory) to their principal."""

    def __init__(self, *, maxsize: int = 10_000, ttl: float = 10.0, enabled: bool = True) -> None:
        self.enabled = enabled and maxsize > 0 and ttl > 0
        self._entries: TTLCache[str, Remembered] = TTLCache(
            maxsize=max(maxsize, 1), ttl=max(ttl, 0.001)
        )
        self._epoch = 0
        self._trusted = True
        self.hits = self.misses = 0

    @property
    def epoch(self) -> int:
        """Changes whenever something is forgotten: take it before resolving."""
        return self._epoch

    def get(self, credential: str) -> Actor | None:
        """The remembered principal, if still trusted and unexpired."""
        if not (self.enabled and self._trusted):
            return None
        found = self._entries.get(credential)
        if found is None or found.expires_at <= time.time():
            self.misses += 1
            return None
        self.hits += 1
        return found.actor

    def put(
        self,
        credential: str,
        actor: Actor,
        keys: Iterable[str],
        *,
        epoch: int,
        expires_at: float = float("inf"),
    ) -> None:
        """Remembers a resolution made at ``epoch``, unless a revocation came since."""
        if self.enabled and self._trusted and epoch == self._epoch:
            self._entries[credential] = Remembered(actor, frozenset(keys), expires_at)

    def forget(self, keys: Iterable[str]) -> None:
        """Drops every credential one of ``keys`` can revoke (rare: a scan is fine)."""
        wanted = set(keys)
        if not wanted:
            return
        self._epoch += 1
        for credential, entry in list(self._entries.items()):
            if entry.keys & wanted:
                self._entries.pop(credential, None)

    def clear(self) -> None:
        """Forgets every credential."""
        self._epoch += 1
        self._entries.clear()

    def distrust(self) -> None:
        """Revocations may be missed from now on (the bus is not listening): forget all."""
        self._trusted = False
        self.clear()

    def trust(self) -> None:
        """The bus listens again: messages published from now on are heard."""
        self.clear()
        self._trusted = True

    def __len__(self) -> int:
        return len(self._entries)
