"""A real server in a subprocess, for the tests that need processes and signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import RATE_LIMIT_PREFIX, RUN_REDIS_KEYS

START_TIMEOUT = 90.0
# Servers under test answer floods from one address; a test that wants limits sets them.
GENEROUS_LIMITS = {
    "RATE_LIMIT_PER_MINUTE": "1000000",
    "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
    "LOGIN_BACKOFF_FAILURES": "1000000",
}
# The run's own Redis keys (tests.conftest deletes them at the session's end).
RUN_KEYS = {
    "RATE_LIMIT_KEY_PREFIX": RATE_LIMIT_PREFIX,
    **{name.upper(): value for name, value in RUN_REDIS_KEYS.items()},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """What the server has logged so far, in whole lines: a worker may be mid-write."""
        text = self.log.read_text(errors="replace")
        return text[: text.rfind("\n") + 1]


def wait_until_live(served: Served, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"the server exited early:\n{served.output()}")
        try:
            if httpx.get(served.url + "/health/live", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not start in {timeout}s:\n{served.output()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ends the server and everything it started, whatever state it is in."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def serving(
    args: list[str], tmp_path: Path, env: dict[str, str], command: list[str] | None = None
) -> Iterator[Served]:
    """``gateway <args> --port <free>`` (or ``command``) in its own process group."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "PROMETHEUS_"))
    }
    full_env.update(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "LOG_FORMAT": "json",
            "ENVIRONMENT": "development",
            **GENEROUS_LIMITS,
            **RUN_KEYS,
            **env,
        }
    )
    argv = (command or [sys.executable, "-m", "gateway.cli", *args]) + ["--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=tmp_path,
            start_new_session=True,
        )
    served = Served(process, port, log)
    try:
        wait_until_live(served)
        yield served
    finally:
        stop(process)
