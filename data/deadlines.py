"""Many deadlines of one length, watched by one timer.

An ``asyncio.timeout`` (or ``wait_for``) per request makes and cancels a timer handle each
time, which on the hot path cost more than the work it guarded. When every item gets the
same time limit, arrival order is deadline order: one timer, armed for the oldest item,
expires the items whose time is up and re-arms for the next one. Adding and removing an
item are a dict insert and delete. The request time limit (``gateway.http.limits``) and
the pool's waiters (``data.pool``) both use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from data.running import running_loop

T = TypeVar("T", bound=Hashable)


class Deadlines(Generic[T]):
    """Items that each expire ``seconds`` after they were added: ``expire(item)`` is
    called for each one still here then (it has been removed first)."""

    def __init__(self, seconds: float, expire: Callable[[T], None]) -> None:
        self.seconds = seconds
        self.expire = expire
        self.items: dict[T, float] = {}  # in arrival order, so in deadline order
        self.timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: object) -> bool:
        return item in self.items

    def add(self, item: T) -> None:
        loop = running_loop()
        deadline = loop.time() + self.seconds
        self.items[item] = deadline
        if self.timer is None:
            self.timer = loop.call_at(deadline, self._expire)

    def discard(self, item: T) -> None:
        self.items.pop(item, None)

    def pop_oldest(self) -> T | None:
        """The item added first (removed), or ``None`` when there is none."""
        for item in self.items:
            del self.items[item]
            return item
        return None

    def _expire(self) -> None:
        self.timer = None
        loop = running_loop()
        now = loop.time()
        while self.items:
            item, deadline = next(iter(self.items.items()))
            if deadline > now:
                self.timer = loop.call_at(deadline, self._expire)
                return
            del self.items[item]
            self.expire(item)
