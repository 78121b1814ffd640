"""The process's one Redis client (gateway.redis_client) against real processes: private
``redis-server`` instances (plain, with an ACL user, with TLS, behind a sentinel, as a
three-node cluster) the tests start, kill and restart; and the readiness probe asking
the client that serves requests."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from gateway.cache.store import Entry, RedisStore
from gateway.ratelimit.buckets import Backoff, Spend, Store
from gateway.redis_client import FAILURES, Batched, Commands, Script, connect, slot_prefix
from gateway.settings import Settings
from tests.conftest import make_settings, running_gateway
from tests.fault_world import TIMEOUT, private_redis
from tests.serving import free_port

VARIANTS = [Commands, Batched]


def settings_for(url: str, **overrides: object) -> Settings:
    return Settings(**{"redis_url": url, "redis_timeout_seconds": 1.0, **overrides})  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def client_of(settings: Settings, kind: type[Commands] = Commands) -> AsyncIterator[Commands]:
    client = connect(settings)
    assert client is not None
    try:
        yield kind(client)
    finally:
        await client.aclose()


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        assert process.poll() is None, "redis-server exited"
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@contextlib.contextmanager
def server(tmp_path: Path, name: str, *args: str, port: int | None = None) -> Iterator[int]:
    """``redis-server`` with ``args`` on a free port (or ``port``), killed afterwards."""
    port = port or free_port()
    where = tmp_path / name
    where.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", *args, "--bind", "127.0.0.1", "--save", "", "--dir", str(where)]
        + ([] if "--port" in args else ["--port", str(port)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("kind", VARIANTS)
async def test_calls_pipelines_and_scripts(tmp_path: Path, kind: type[Commands]) -> None:
    with private_redis(tmp_path) as redis:
        async with client_of(settings_for(redis.url), kind) as r:
            replies = await asyncio.gather(
                *(r.call("SET", f"k{i}", f"v{i}" * (i % 7 + 1)) for i in range(200))
            )
            assert replies == [True] * 200
            got = await asyncio.gather(*(r.call("GET", f"k{i}") for i in range(200)))
            assert got == [(f"v{i}" * (i % 7 + 1)).encode() for i in range(200)]
            assert await r.pipeline([("INCR", "n"), ("INCR", "n")]) == [1, 2]
            await r.call("SET", "text", "abc")
            with pytest.raises(ResponseError, match="not an integer"):
                await r.call("INCR", "text")
            assert await r.call("GET", "text") == b"abc"  # the connection still serves

            script = Script(f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
            assert await r.run(script, ["s"], [5]) == 5  # EVALSHA missed: EVAL
            assert await r.run(script, ["s"], [2]) == 7
            await r.call("SCRIPT", "FLUSH")
            assert await r.run(script, ["s"], [1]) == 8  # forgotten again: EVAL again


@pytest.mark.parametrize("kind", VARIANTS)
async def test_a_restarted_redis_is_reached_again(tmp_path: Path, kind: type[Commands]) -> None:
    with private_redis(tmp_path) as redis:
        async with client_of(settings_for(redis.url), kind) as r:
            assert await r.call("PING") is True
            redis.kill()
            with pytest.raises(FAILURES):
                await r.call("PING")
            redis.start()  # the same port, empty
            assert await r.call("PING") is True


async def test_a_frozen_redis_times_out_then_serves_again(tmp_path: Path) -> None:
    with private_redis(tmp_path) as redis:
        async with client_of(settings_for(redis.url, redis_timeout_seconds=0.3)) as r:
            assert await r.call("PING") is True
            redis.freeze()
            try:
                with pytest.raises(FAILURES):
                    await r.call("PING")
            finally:
                redis.thaw()
            assert await r.call("PING") is True


async def test_nothing_listening_is_a_failure_callers_handle() -> None:
    async with client_of(settings_for(f"redis://127.0.0.1:{free_port()}/0")) as r:
        with pytest.raises(FAILURES):
            await r.call("PING")


async def test_readiness_asks_the_client_that_serves(tmp_path: Path) -> None:
    """Redis stops: degraded; it comes back on the same address: ok, no restart."""
    with private_redis(tmp_path) as redis:
        db = f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}"
        # A loaded machine's loop can stall: the database is not what is asked here.
        settings = make_settings(
            db, tmp_path, redis_url=redis.url, redis_timeout_seconds=1.0, health_timeout_seconds=10
        )
        async with running_gateway(settings, "sqlite") as gw:
            assert gw.app.state.redis is not None
            first = await gw.client.get("/health/ready")
            assert first.json()["checks"]["redis"] == "ok"
            redis.kill()
            down = (await gw.client.get("/health/ready")).json()
            assert down["degraded"] == ["redis"], down
            assert down["checks"]["redis"].startswith("failed"), down
            redis.start()
            back = (await gw.client.get("/health/ready")).json()
            assert back["checks"]["redis"] == "ok", back


async def test_an_acl_user_from_the_url(tmp_path: Path) -> None:
    with server(tmp_path, "acl") as port:
        async with client_of(settings_for(f"redis://127.0.0.1:{port}/0")) as admin:
            await admin.call("ACL", "SETUSER", "gw", "on", ">s3cret", "~*", "+@all")
        async with client_of(settings_for(f"redis://gw:s3cret@127.0.0.1:{port}/0")) as r:
            assert await r.call("SET", "who", "gw") is True
            assert await r.call("ACL", "WHOAMI") == b"gw"
        async with client_of(settings_for(f"redis://gw:wrong@127.0.0.1:{port}/0")) as r:
            with pytest.raises(FAILURES):
                await r.call("PING")
        db = f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}"
        url = f"redis://gw:s3cret@127.0.0.1:{port}/0"
        async with running_gateway(make_settings(db, tmp_path, redis_url=url), "sqlite") as gw:
            assert (await gw.client.get("/health/ready")).json()["checks"]["redis"] == "ok"


def throwaway_certificate(where: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    where.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = where / "redis.crt", where / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_rediss_with_a_private_tls_redis(tmp_path: Path) -> None:
    cert, key = throwaway_certificate(tmp_path / "tls")
    port = free_port()
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert)]
    tls += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    with server(tmp_path, "tls", *tls, port=port):
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        async with client_of(settings_for(url)) as r:
            assert await r.call("SET", "over", "tls") is True
            assert await r.call("GET", "over") == b"tls"
        # Plain text to a TLS port is not answered: the client fails, it does not hang.
        async with client_of(settings_for(f"redis://127.0.0.1:{port}/0")) as r:
            with pytest.raises(FAILURES):
                await r.call("PING")


async def test_the_cache_through_a_sentinel(tmp_path: Path) -> None:
    with private_redis(tmp_path) as master:
        sentinel_port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor gwmaster 127.0.0.1 {master.port} 1\n"
        )
        process = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(sentinel_port, process)
            settings = settings_for(
                # the host in the URL is not used: the sentinels say where the master is
                "redis://unused:1/0",
                redis_sentinels=f"127.0.0.1:{sentinel_port}",
                redis_sentinel_service="gwmaster",
            )
            async with client_of(settings, Batched) as r:  # the default
                store = RedisStore(r, "gw:", retry_seconds=1.0)
                await store_round_trip(store)
            db = f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}"
            app_settings = make_settings(
                db,
                tmp_path,
                redis_url="redis://unused:1/0",
                redis_sentinels=f"127.0.0.1:{sentinel_port}",
                redis_sentinel_service="gwmaster",
            )
            async with running_gateway(app_settings, "sqlite") as gw:
                assert (await gw.client.get("/health/ready")).json()["checks"]["redis"] == "ok"
        finally:
            process.kill()
            process.wait(timeout=10)


async def store_round_trip(store: RedisStore) -> None:
    """A lookup misses, a put under its stamp is then found, a bump hides it (keys under
    the store's prefix, as the cache middleware makes them)."""
    base = store.prefix + "r:page:1:"
    stamp, found = await store.lookup(base, ["product:1", "catalog"])
    assert found is None
    entry = Entry(200, ((b"content-type", b"application/json"),), b'{"ok":1}')
    await store.put(base + stamp, entry, 60)
    again, found = await store.lookup(base, ["product:1", "catalog"])
    assert (again, found) == (stamp, entry)
    await store.bump(["product:1"])
    after, found = await store.lookup(base, ["product:1", "catalog"])
    assert after != stamp
    assert found is None


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free too."""
    while True:
        port = random.randrange(20000, 50000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10000):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port


def cluster_ok(port: int) -> bool:
    info = subprocess.run(
        ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, timeout=TIMEOUT
    )
    return b"cluster_state:ok" in info.stdout


async def test_the_cache_and_rate_limits_on_a_cluster(tmp_path: Path) -> None:
    ports = [cluster_port() for _ in range(3)]
    with contextlib.ExitStack() as stack:
        for port in ports:
            stack.enter_context(
                server(
                    tmp_path,
                    f"node{port}",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--appendonly",
                    "no",
                    port=port,
                )
            )
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )
        settings = settings_for(f"redis://127.0.0.1:{ports[0]}/0", redis_cluster=True)
        deadline = time.monotonic() + TIMEOUT
        while not all(cluster_ok(port) for port in ports):  # every node agrees on the slots
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.1)
        async with client_of(settings, Batched) as r:  # the default
            store = RedisStore(r, slot_prefix("gw:", settings), retry_seconds=1.0)
            assert store.prefix == "{gw:}"
            await store_round_trip(store)
            locked, entry = await store.claim(store.prefix + "r:page:2:x", 5)
            assert (locked, entry) == (True, None)
            limits = Store(r, slot_prefix("rl:", settings), Backoff(5, 60, 1, 60))
            spends = [Spend("ip:1", 2, 0.001, 1), Spend("user:1", 5, 0.001, 1)]
            assert [(await limits.take(spends))[0] for _ in range(3)] == [True, True, False]
            # Redis said no: the buckets were in Redis, not in this process
            assert limits.local._buckets == {}
