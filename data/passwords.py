"""Password hashing with argon2id (argon2-cffi), the current OWASP recommendation.

Hashing and checking take a few hundred milliseconds of CPU by design. Services await
``hash_password_async``/``verify_password_async``, which run them in a small thread pool
(argon2-cffi releases the GIL), so a login flood cannot stall the event loop and every
other request on it. The pool's queue is bounded: past ``queue`` waiting jobs a call is
refused with ``RateLimited`` at once rather than queueing without end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from data.errors import RateLimited

T = TypeVar("T")

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
UNUSABLE = "!"


def hash_password(password: str) -> str:
    """Blocks for the whole hash: for the CLI and seeding, never on a serving event loop."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; spends the same work when there is no hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


class HashingPool:
    """A thread pool for argon2 with a bounded number of jobs running or waiting."""

    def __init__(self, threads: int = 2, queue: int = 32) -> None:
        self.threads, self.queue = threads, queue
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        # A thread-safe count rather than an asyncio.Semaphore: the pool outlives any one
        # event loop (tests run many), and a semaphore is bound to the loop that first waits.
        self._lock = threading.Lock()
        self._pending = 0

    async def run(self, work: Callable[[], T]) -> T:
        with self._lock:
            if self._pending >= self.threads + self.queue:
                raise RateLimited(
                    "The server is busy checking passwords; try again shortly.", retry_after=1
                )
            self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            with self._lock:
                self._pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)


_pool = HashingPool()


def configure_hashing(threads: int, queue: int) -> None:
    """Resize the process's hashing pool (the gateway calls this from its settings)."""
    global _pool
    if (_pool.threads, _pool.queue) != (threads, queue):
        old, _pool = _pool, HashingPool(threads, queue)
        old.shutdown()  # jobs already submitted still finish


async def hash_password_async(password: str) -> str:
    """``hash_password`` in the hashing pool."""
    return await _pool.run(lambda: hash_password(password))


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """``verify_password`` in the hashing pool."""
    return await _pool.run(lambda: verify_password(password_hash, password))
