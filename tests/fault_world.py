"""Real processes for the cache's fault tests: a private Redis the test kills, freezes and
restarts; a TCP proxy it can cut, so one instance alone loses Redis; readers that keep
asking both instances, through both interfaces, for one product's price; and the check
that no answer sent after an acknowledged write shows an older price.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.serving import free_port

TIMEOUT = 30.0
RECOVERY = 10.0  # generous: "within seconds"


@dataclass
class PrivateRedis:
    """``redis-server`` on a free port, nothing persisted: a restart comes back empty."""

    dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.ping():
                return
            assert self.process.poll() is None, "redis-server exited"
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)


@contextlib.contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    try:
        yield redis
    finally:
        if redis.process is not None and redis.process.poll() is None:
            redis.thaw()
        redis.kill()


class CuttableProxy:
    """A TCP proxy to ``port`` in the test's loop; ``cut()`` drops every connection and
    refuses new ones (a route lost from one instance only), ``mend()`` lets them in."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.cut_off = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            writer.transport.abort()

    def cut(self) -> None:
        self.cut_off = True
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    def mend(self) -> None:
        self.cut_off = False

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Read:
    sent: float
    got: float
    instance: str
    kind: str
    status: int
    x_cache: str
    cents: int | None


PRODUCT_GQL = "query($sku: String!) { product(sku: $sku) { databaseId price { amount } } }"
PRODUCTS_GQL = """query($q: String!) { products(first: 50, filter: {q: $q}) {
  edges { node { databaseId price { amount } } } } }"""


def _cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


class Readers:
    """Keeps asking every instance for the product's price in five ways (REST v1 and v2
    detail, v1 list, GraphQL ``product`` and ``products``), ``lanes`` at a time each."""

    KINDS = ("v1", "v2", "v1-list", "gql-product", "gql-products")

    def __init__(self, instances: dict[str, str], product: dict[str, Any], lanes: int = 2) -> None:
        self.instances = instances
        self.product = product
        self.lanes = lanes
        self.reads: list[Read] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.running = False
        self.idle: set[str] = set()  # instances nobody reads from for now

    async def read(self, client: httpx.AsyncClient, name: str, kind: str) -> Read:
        product = self.product
        sent = time.monotonic()
        if kind == "v1":
            response = await client.get(f"/api/v1/products/{product['id']}")
        elif kind == "v2":
            response = await client.get(f"/api/v2/products/{product['id']}")
        elif kind == "v1-list":
            response = await client.get(
                "/api/v1/products", params={"q": product["name"], "limit": 100}
            )
        elif kind == "gql-product":
            response = await client.post(
                "/graphql", json={"query": PRODUCT_GQL, "variables": {"sku": product["sku"]}}
            )
        else:
            response = await client.post(
                "/graphql", json={"query": PRODUCTS_GQL, "variables": {"q": product["name"]}}
            )
        cents = None
        if response.status_code // 100 == 2:
            cents = self._cents(kind, response.json())
        seen = Read(
            sent,
            time.monotonic(),
            name,
            kind,
            response.status_code,
            response.headers.get("x-cache", ""),
            cents,
        )
        self.reads.append(seen)
        return seen

    def _cents(self, kind: str, body: dict[str, Any]) -> int:
        pid = self.product["id"]
        if kind == "v1":
            return int(body["price_cents"])
        if kind == "v2":
            return _cents(body["price"]["amount"])
        if kind == "v1-list":
            [item] = [item for item in body["data"] if item["id"] == pid]
            return int(item["price_cents"])
        assert "errors" not in body, body
        if kind == "gql-product":
            return _cents(body["data"]["product"]["price"]["amount"])
        [node] = [
            edge["node"]
            for edge in body["data"]["products"]["edges"]
            if edge["node"]["databaseId"] == pid
        ]
        return _cents(node["price"]["amount"])

    async def _lane(self, name: str, url: str, offset: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
            turn = offset
            while self.running:
                if name in self.idle:
                    await asyncio.sleep(0.05)
                    continue
                kind = self.KINDS[turn % len(self.KINDS)]
                turn += 1
                try:
                    await self.read(client, name, kind)
                except httpx.TransportError:
                    await asyncio.sleep(0.05)

    def start(self) -> None:
        self.running = True
        for name, url in self.instances.items():
            for lane in range(self.lanes):
                self.tasks.append(asyncio.create_task(self._lane(name, url, lane * 2)))

    async def stop(self) -> None:
        self.running = False
        await asyncio.gather(*self.tasks)
        self.tasks.clear()


class Writes:
    """Staff price changes through REST v1, each acknowledged at a known moment."""

    def __init__(self, token: str, product: dict[str, Any]) -> None:
        self.auth = {"Authorization": f"Bearer {token}"}
        self.product = product
        self.acked: list[tuple[float, int]] = []  # (when the 200 arrived, new price)

    async def change_price(self, url: str) -> int:
        cents = int(self.product["price_cents"]) + 100 * (len(self.acked) + 1)
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
            response = await client.patch(
                f"/api/v1/products/{self.product['id']}",
                json={"price_cents": cents},
                headers=self.auth,
            )
        assert response.status_code == 200, response.text
        assert response.json()["price_cents"] == cents
        self.acked.append((time.monotonic(), cents))
        return cents


def stale_reads(reads: list[Read], acked: list[tuple[float, int]]) -> list[str]:
    """Every 2xx answer to a read sent after a write was acknowledged that shows an
    older price (prices only grow, one step per write)."""
    found = []
    for read in reads:
        if read.cents is None:
            continue
        floor = max((cents for at, cents in acked if at < read.sent), default=0)
        if read.cents < floor:
            found.append(f"{read.instance} {read.kind} {read.x_cache}: {read.cents} < {floor}")
    return found


async def until(predicate: Any, what: str, timeout: float = RECOVERY) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.1)
