"""``data.running.running_loop``: what it spares (a getpid system call) must not change
what it answers; and multiprocess metrics in a forked worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from data.running import running_loop

ROOT = Path(__file__).resolve().parent.parent


def test_the_running_loop_is_asyncios_in_every_loop_and_thread() -> None:
    async def twice() -> tuple[asyncio.AbstractEventLoop, ...]:
        return running_loop(), running_loop(), asyncio.get_running_loop()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1] is first[2]
    assert second[0] is second[1] is second[2]
    assert second[0] is not first[0]

    seen: dict[str, asyncio.AbstractEventLoop] = {}
    ready, done = threading.Event(), threading.Event()

    async def in_thread() -> None:
        seen["thread"] = running_loop()
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.001)
        seen["thread again"] = running_loop()

    async def main() -> None:
        thread = threading.Thread(target=asyncio.run, args=(in_thread(),))
        thread.start()
        await asyncio.to_thread(ready.wait)
        seen["main"] = running_loop()  # the other thread's loop was found last
        done.set()
        await asyncio.to_thread(thread.join)
        seen["main again"] = running_loop()
        assert seen["main again"] is asyncio.get_running_loop()

    asyncio.run(main())
    assert seen["thread"] is seen["thread again"]
    assert seen["main"] is seen["main again"] is not seen["thread"]


def test_outside_a_loop_there_is_none() -> None:
    asyncio.run(asyncio.sleep(0))  # a loop found, and stopped since
    with pytest.raises(RuntimeError):
        running_loop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_writes_metrics_files_of_its_own(tmp_path: Path) -> None:
    """Multiprocess metrics: a child forked after a value was written starts files under
    its own pid."""
    script = textwrap.dedent("""
        import os, sys
        from gateway.observability.metrics import Metrics
        metrics = Metrics()
        metrics.requests.labels("GET", "/x", "200").inc()
        pid = os.fork()
        if pid == 0:
            metrics.requests.labels("GET", "/x", "200").inc(5)
            os._exit(0)
        os.waitpid(pid, 0)
        print(os.getpid(), pid)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    parent, child = done.stdout.split()
    assert sorted(p.name for p in tmp_path.glob("counter_*.db")) == sorted(
        [f"counter_{parent}.db", f"counter_{child}.db"]
    )

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    total = registry.get_sample_value(
        "gateway_http_requests_total", {"method": "GET", "route": "/x", "status": "200"}
    )
    assert total == 6
