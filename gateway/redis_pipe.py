"""One pipelined Redis connection for the per-request hot path (cache lookups, buckets).

redis-py's asyncio client checks a connection out of its pool, wraps the command in its
retry helper and reads the reply through an ``asyncio.StreamReader`` on every call:
about 60 µs of CPU per command here (``bench``), most of a cached page's
budget. RESP allows many commands in flight on one connection, answered in order, so
this client keeps one connection per process and matches replies to a FIFO of futures;
``hiredis`` (the parser redis-py itself uses when installed) turns bytes into replies.
A command then costs about 7 µs. Pub/sub and everything off the hot path stay on
redis-py.

Failures raise redis-py's own exceptions (``ConnectionError``, ``TimeoutError``,
``ResponseError``, all ``RedisError``), so callers handle both clients alike. The
deadline is the connection's, not each call's: replies come in order, so when the
oldest command in flight has waited ``timeout`` seconds the server is taken for hung,
every waiter fails with ``TimeoutError`` and the connection is dropped; the next call
connects afresh. One timer per connection, re-armed only when it fires, instead of a
timer per command (``asyncio.timeout`` cost more than the command itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from data.running import running_loop
from gateway.http.coalescing import CoalescingTransport

Arg = str | bytes | int | float


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.sent_at: deque[float] = deque()  # when each waiter's command went out
        self.timeout = timeout
        self.watchdog: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Every command asked for in one loop turn goes out in one write (one system call
        # for all the requests the loop was serving), in the order they were asked.
        self.transport = CoalescingTransport(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:  # not RESP: nothing more can be trusted
                self.fail(RedisConnectionError(f"bad reply from Redis: {exc}"))
                return
            if reply is False:
                return
            if not waiters:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            future = waiters.popleft()
            self.sent_at.popleft()
            if future.done():  # its caller gave up (timeout): the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                future.set_exception(
                    NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text)
                )
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def fail(self, exc: Exception) -> None:
        self.lost = self.lost or exc
        self.sent_at.clear()
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(exc)
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.transport is not None:
            self.transport.abort()

    def send(self, payload: bytes, count: int) -> list[asyncio.Future[Any]]:
        assert self.transport is not None
        loop = running_loop()
        futures = [loop.create_future() for _ in range(count)]
        now = loop.time()
        self.waiters.extend(futures)
        self.sent_at.extend([now] * count)
        self.transport.write(payload)
        if self.watchdog is None:
            self.watchdog = loop.call_at(now + self.timeout, self._watch)
        return futures

    def _watch(self) -> None:
        self.watchdog = None
        if not self.sent_at:
            return  # idle: the next send arms it again
        due = self.sent_at[0] + self.timeout
        loop = asyncio.get_running_loop()
        if loop.time() >= due:
            self.fail(RedisTimeoutError(f"no reply from Redis within {self.timeout:g} s"))
        else:
            self.watchdog = loop.call_at(due, self._watch)


class Script:
    """A Lua script run by ``EVALSHA`` (``EVAL`` once when the server does not know it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


class PipelinedRedis:
    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        self.timeout = timeout
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parsed.scheme!r}")
        self.scheme = parsed.scheme
        self.host = parsed.hostname or "localhost"
        self.port = parsed.port or 6379
        self.path = parsed.path
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        db = parsed.path.lstrip("/") if parsed.scheme != "unix" else ""
        for part in parsed.query.split("&"):
            name, _, value = part.partition("=")
            if name == "db":
                db = value
        self.db = int(db) if db else 0
        self.protocol: _Protocol | None = None
        self.connecting: asyncio.Future[_Protocol] | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()

        def factory() -> _Protocol:
            return _Protocol(self.timeout)

        async with asyncio.timeout(self.timeout):
            if self.scheme == "unix":
                _, protocol = await loop.create_unix_connection(factory, self.path)
            else:
                context = ssl.create_default_context() if self.scheme == "rediss" else None
                _, protocol = await loop.create_connection(
                    factory, self.host, self.port, ssl=context
                )
        setup: list[tuple[Arg, ...]] = []
        if self.password is not None:
            setup.append(("AUTH", *((self.username,) if self.username else ()), self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        if setup:
            payload = b"".join(hiredis.pack_command(command) for command in setup)
            for future in protocol.send(payload, len(setup)):
                await future
        return protocol

    async def _protocol(self) -> _Protocol:
        protocol = self.protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        if self.connecting is None:
            # One connect for everyone who asks meanwhile.
            self.connecting = asyncio.ensure_future(self._connect())
        connecting = self.connecting
        try:
            protocol = await asyncio.shield(connecting)
        except TimeoutError as exc:
            raise RedisTimeoutError(f"no connection to Redis within {self.timeout:g} s") from exc
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        finally:
            if self.connecting is connecting and connecting.done():
                self.connecting = None
        self.protocol = protocol
        return protocol

    async def call(self, *args: Arg) -> Any:
        """One command's reply."""
        protocol = self.protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._protocol()
        [future] = protocol.send(hiredis.pack_command(args), 1)
        return await future

    async def pipeline(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Several commands in one write; their replies in order (the first error raises)."""
        protocol = self.protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._protocol()
        payload = b"".join(hiredis.pack_command(command) for command in commands)
        replies = await asyncio.gather(
            *protocol.send(payload, len(commands)), return_exceptions=True
        )
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """The script's reply, loading it into the server the first time it is missing."""
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.call("EVAL", script.text, len(keys), *keys, *args)

    def discard(self) -> None:
        """Drop the connection: its waiters fail, the next call connects again."""
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.fail(RedisConnectionError("connection to Redis discarded"))

    async def aclose(self) -> None:
        self.discard()
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
