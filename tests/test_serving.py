"""The real server: gunicorn workers sharing metrics, SIGTERM draining, the image's command.

Each test starts ``gateway serve`` in a subprocess on a free port with an embedded SQLite
database in a temporary directory, waits with a bound, and always kills it.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving import Served, serving

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = "/api/v1/products"


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def access_pids(served: Served, route: str) -> set[int]:
    lines = [json.loads(line) for line in served.output().splitlines() if line.startswith("{")]
    return {
        line["pid"]
        for line in lines
        if line.get("event") == "request" and line.get("route") == route
    }


def test_metrics_sum_requests_across_gunicorn_workers(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    with serving(["serve", "--workers", "2"], tmp_path, env) as served:
        sent = 0
        # Connections are shared out by whichever worker accepts first; keep asking
        # (each on a new connection) until both have answered, within a bound.
        while len(access_pids(served, PRODUCTS)) < 2 and sent < 400:
            response = httpx.get(served.url + PRODUCTS + "?limit=1", timeout=10)
            assert response.status_code == 200
            sent += 1
        assert len(access_pids(served, PRODUCTS)) == 2, "one worker answered everything"

        def counted() -> float:
            text = httpx.get(served.url + "/metrics", timeout=10).text
            return metric(text, "gateway_http_requests_total", route=PRODUCTS, status="200")

        # A worker records a request as it finishes it, a moment after the client has its
        # answer: wait (bounded) until the last one is in, then whichever worker answers
        # a scrape reports both workers' requests.
        deadline = time.monotonic() + 10
        while counted() != sent and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(6):
            assert counted() == sent
        assert "server" not in {key.lower() for key in response.headers}


def test_several_workers_without_redis_serve_without_the_response_cache(tmp_path: Path) -> None:
    """``--workers 2`` alone (no WEB_CONCURRENCY, no Redis): each worker knows it has a
    sibling, so no in-process cache can answer from before another worker's write."""
    with serving(["serve", "--workers", "2"], tmp_path, {}) as served:
        for _ in range(6):
            response = httpx.get(served.url + PRODUCTS + "?limit=1", timeout=10)
            assert response.status_code == 200
            assert response.headers["x-cache"] == "BYPASS"


async def _slow_graphql(
    client: httpx.AsyncClient, sent_head: asyncio.Event, release: asyncio.Event
) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"query": "{ products(first: 2) '
        sent_head.set()
        await release.wait()
        yield b'{ edges { node { name } } } }"}'

    return await client.post(
        "/graphql", content=body(), headers={"Content-Type": "application/json"}
    )


async def _in_flight(url: str) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=5) as probe:
        return metric((await probe.get("/metrics")).text, "gateway_http_requests_in_flight")


async def _wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    """Requests whose bodies are still arriving when SIGTERM comes all finish with 200.

    The slowness is the client's: each request sends half its body, and the rest only
    after the server has stopped accepting new connections.
    """
    env = {"SHUTDOWN_DRAIN_SECONDS": "2", "SHUTDOWN_GRACE_SECONDS": "20"}
    with serving(["serve"], tmp_path, env) as served:
        release = asyncio.Event()
        heads = [asyncio.Event() for _ in range(3)]
        limits = httpx.Limits(max_connections=10)
        async with httpx.AsyncClient(base_url=served.url, timeout=30, limits=limits) as client:
            slow = [asyncio.create_task(_slow_graphql(client, head, release)) for head in heads]
            await asyncio.wait_for(asyncio.gather(*(head.wait() for head in heads)), 30)

            async def all_in_flight() -> bool:  # the three and the scrape itself
                return await _in_flight(served.url) >= 4

            await _wait_for(all_in_flight, "the slow requests to reach the app")
            served.process.send_signal(signal.SIGTERM)
            readiness: list[int] = []

            async def not_ready() -> bool:
                async with httpx.AsyncClient(base_url=served.url, timeout=5) as probe:
                    readiness.append((await probe.get("/health/ready")).status_code)
                return readiness[-1] == 503

            await _wait_for(not_ready, "readiness to turn 503")

            async def refusing() -> bool:
                try:
                    async with httpx.AsyncClient(base_url=served.url, timeout=5) as probe:
                        await probe.get("/health/live")
                except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                    # Refused, or (a probe the kernel queued just as the listener closed)
                    # reset unanswered: either way no new connection is served.
                    return True
                return False

            await _wait_for(refusing, "the server to stop accepting")
            assert served.process.poll() is None, "exited with requests in flight"
            release.set()
            responses = await asyncio.wait_for(asyncio.gather(*slow), 30)
        for response in responses:
            assert response.status_code == 200
            assert len(response.json()["data"]["products"]["edges"]) == 2
        assert served.process.wait(timeout=30) == 0
        assert 503 in readiness
        assert "Application shutdown complete" in served.output()


def test_the_images_command_migrates_when_asked_and_serves(tmp_path: Path) -> None:
    """Docker cannot run here: run the Dockerfile's CMD as it stands, outside Docker."""
    cmd_line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    )
    command = json.loads(cmd_line.removeprefix("CMD "))
    assert command[:2] == ["gateway", "serve"]
    host = command.index("--host")
    command[host + 1] = "127.0.0.1"
    port = command.index("--port")
    del command[port : port + 2]
    command[0] = str(Path(sys.executable).parent / "gateway")
    env = {
        "RUN_MIGRATIONS": "1",
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'image.sqlite3'}",
    }
    with serving([], tmp_path, env, command=command) as served:
        assert httpx.get(served.url + "/health/live", timeout=5).status_code == 200
        assert httpx.get(served.url + "/health/ready", timeout=5).status_code == 200
        listing = httpx.get(served.url + PRODUCTS, timeout=5)
        assert listing.status_code == 200, listing.text  # the tables exist: migrated
        assert listing.json()["data"] == []  # and not seeded: that is only the embedded demo
        assert "migrated to the latest revision" in served.output(), shlex.join(command)


@pytest.mark.parametrize("workers", [1, 2], ids=["uvicorn", "gunicorn"])
async def test_sigterm_under_load_answers_every_accepted_request(
    tmp_path: Path, workers: int
) -> None:
    """Shutdown while clients keep reading: every answer is a 200 (during the drain too),
    every request the server handled reached its client (its access line's request id is
    among the answers received), failures come only after SIGTERM, and the server exits
    cleanly."""
    env = {"SHUTDOWN_DRAIN_SECONDS": "1", "SHUTDOWN_GRACE_SECONDS": "10"}
    args = ["serve", "--workers", str(workers)]
    with serving(args, tmp_path, env) as served:
        signalled: list[float] = []
        statuses: list[int] = []
        received: set[str] = set()
        failures: list[tuple[float, str]] = []
        stop = asyncio.Event()

        async def reader(n: int) -> None:
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
                i = n
                while not stop.is_set():
                    i += 8
                    request_id = f"r{n}x{i}"
                    try:
                        response = await client.get(
                            f"{PRODUCTS}?limit=5&sort=-price", headers={"X-Request-ID": request_id}
                        )
                    except httpx.TransportError as exc:
                        failures.append((time.monotonic(), type(exc).__name__))
                        if signalled:
                            await asyncio.sleep(0.05)
                        continue
                    statuses.append(response.status_code)
                    received.add(request_id)

        readers = [asyncio.create_task(reader(n)) for n in range(8)]
        await _wait_for(lambda: _true(len(statuses) >= 50), "the readers to get going")
        before = len(statuses)
        signalled.append(time.monotonic())
        served.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(served.process.wait, 60)
        stop.set()
        await asyncio.gather(*readers)
    assert code == 0, served.output()[-3000:]
    assert set(statuses) == {200}, sorted(set(statuses))
    assert len(statuses) > before, "nothing was answered after SIGTERM (the drain)"
    assert all(at >= signalled[0] for at, _ in failures), failures[:5]
    output = served.output()
    assert "Traceback" not in output
    handled = {
        line["request_id"]
        for line in map(json.loads, filter(lambda text: text.startswith("{"), output.splitlines()))
        if line.get("event") == "request" and str(line.get("request_id", "")).startswith("r")
    }
    assert handled, "no access line"
    assert handled <= received, sorted(handled - received)[:5]


async def _true(value: bool) -> bool:
    return value
