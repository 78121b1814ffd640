"""The benchmark's moving parts: a database of its own, three servers, wrk, /metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import IO, Any
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    base: str,
    method: str,
    path: str,
    body: dict[str, object] | None = None,
    timeout: float = 30,
    headers: Sequence[tuple[str, str]] = (),
    form: dict[str, str] | None = None,
) -> Answer:
    """One request with the standard library (validation, setup, writes and /metrics,
    not load); ``form`` sends a URL-encoded form instead of a JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    content_type = "application/json"
    if form is not None:
        data, content_type = urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": content_type, **dict(headers)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


class Processes:
    """Servers started by the bench; ``stop_all`` ends each one's process group, by id."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append((name, process, log))
        print(f"bench: started {name} (pid {process.pid})", flush=True)
        return process

    def wait_ready(self, name: str, base: str, path: str, timeout: float = 60) -> None:
        process = next(p for n, p, _ in self.running if n == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"bench: {name} exited at start:\n{self.tail(name)}")
            try:
                if fetch(base, "GET", path, timeout=2).status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"bench: {name} did not start in {timeout:.0f}s:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> None:
        for _name, process, _log in reversed(self.running):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for _name, process, log in reversed(self.running):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=5)
            log.close()
        self.running.clear()


def python_server(app: str, port: int) -> list[str]:
    """uvicorn with uvloop and httptools and no access log: the references' server."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def gateway_server(port: int) -> list[str]:
    """What ``gateway serve --workers N`` runs, with one worker."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:gateway.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "gateway.app:app_from_environment()",
    ]


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    non2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @classmethod
    def combine(cls, loads: list[Load]) -> Load:
        """Rounds of one server as one load: requests and seconds added up (req/s over the
        whole time), the median of their p50s and the worst of their p99s (wrk's
        histograms are not kept, so the percentiles of the union are not known)."""
        return cls(
            sum(load.requests for load in loads),
            sum(load.seconds for load in loads),
            sum(load.errors for load in loads),
            sum(load.non2xx for load in loads),
            median(load.p50_ms for load in loads),
            max(load.p99_ms for load in loads),
        )


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(
            "bench: wrk is not installed. On Debian or Ubuntu: "
            "sudo apt-get install -y wrk (or brew install wrk on macOS)"
        )
    return found


def run_wrk(
    base: str, requests: Sequence[Any], *, seconds: float, connections: int, threads: int
) -> Load:
    """``wrk`` for ``seconds`` against loopback, each request drawn at random from
    ``requests`` (``bench.scenarios.Request``); its Lua ``done`` reports as JSON."""
    assert base.startswith("http://127.0.0.1:"), "the bench loads loopback only"
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", encoding="utf-8") as listing:
        for request in requests:
            body = "" if request.body is None else json.dumps(request.body)
            fields = [
                request.method,
                request.path,
                body,
                *(f"{name}: {value}" for name, value in request.headers),
            ]
            listing.write("\t".join(fields) + "\n")
        listing.flush()
        env = {**os.environ, "BENCH_REQUESTS": listing.name}
        argv = [
            wrk_path(),
            "-t",
            str(max(1, min(threads, connections))),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            base + requests[0].path,
        ]
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"bench: wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    return Load(
        r["requests"],
        r["duration_us"] / 1e6,
        r["errors"],
        r["non2xx"],
        r["p50_us"] / 1000,
        r["p99_us"] / 1000,
    )


def _samples(base: str) -> dict[tuple[str, str | None], float] | None:
    answer = fetch(base, "GET", "/metrics")
    if answer.status != 200:
        return None
    values: dict[tuple[str, str | None], float] = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for s in family.samples:
            key = (s.name, s.labels.get("route"))
            values[key] = values.get(key, 0.0) + s.value  # labels other than route summed
    return values


@dataclass
class CacheCount:
    """The gateway's response cache counters (both interfaces) at one moment."""

    hits: float = 0.0
    misses: float = 0.0
    bypasses: float = 0.0

    def __sub__(self, other: CacheCount) -> CacheCount:
        return CacheCount(
            self.hits - other.hits, self.misses - other.misses, self.bypasses - other.bypasses
        )

    def __add__(self, other: CacheCount) -> CacheCount:
        return CacheCount(
            self.hits + other.hits, self.misses + other.misses, self.bypasses + other.bypasses
        )

    @property
    def hit_rate(self) -> float | None:
        """Hits over the lookups that could hit (bypasses, such as writes, left out)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


def cache_counters(base: str) -> CacheCount | None:
    """``gateway_cache_hits/misses/bypasses_total`` from /metrics; None without them."""
    values = _samples(base)
    if values is None or ("gateway_cache_hits_total", None) not in values:
        return None
    return CacheCount(
        values["gateway_cache_hits_total", None],
        values.get(("gateway_cache_misses_total", None), 0.0),
        values.get(("gateway_cache_bypasses_total", None), 0.0),
    )


def counters(base: str) -> tuple[float, float] | None:
    """``(SQL statements, requests answered)`` so far, from the gateway's /metrics.

    Requests are counted by the gateway, not by wrk: wrk leaves the requests still in
    flight when its time is up out of its count, but the gateway ran their statements.
    Read once no request but the scrape is in flight; None without the statement counter.
    """
    deadline = time.monotonic() + 10
    while True:
        answer = fetch(base, "GET", "/metrics")
        if answer.status != 200:
            return None
        values = {
            (s.name, s.labels.get("route")): s.value
            for family in text_string_to_metric_families(answer.body.decode())
            for s in family.samples
        }
        if values.get(("gateway_http_requests_in_flight", None), 0) <= 1:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if ("gateway_db_statements_total", None) not in values:
        return None
    requests = sum(
        v
        for (name, route), v in values.items()
        if name == "gateway_http_requests_total" and route != "/metrics"
    )
    return values["gateway_db_statements_total", None], requests
