"""gunicorn settings for ``gateway serve --workers N`` (``--config python:gateway.gunicorn_conf``).

Read by gunicorn in the master process. The knobs come from the environment (see
docs/operations.md, "Settings"); the gateway's own settings are validated here too, so a production
start with a placeholder secret fails before any worker forks.
"""

import os
import tempfile
from pathlib import Path
from typing import Protocol

from gateway.observability.logging import logging_config, resolve_format
from gateway.settings import load_settings

settings = load_settings()

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GATEWAY_WORKERS", str(settings.web_concurrency)))
worker_class = "gateway.server.GatewayWorker"
timeout = int(os.environ.get("GATEWAY_TIMEOUT", "30"))
# gunicorn kills a worker this long after SIGTERM; uvicorn's own limit comes first.
graceful_timeout = int(settings.shutdown_drain_seconds + settings.shutdown_grace_seconds) + 5
keepalive = int(os.environ.get("GATEWAY_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GATEWAY_MAX_REQUESTS", "10000"))
max_requests_jitter = int(os.environ.get("GATEWAY_MAX_REQUESTS_JITTER", "1000"))
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proxy_protocol = False
accesslog = None  # the gateway writes one access line per request itself
logconfig_dict = logging_config(
    resolve_format(settings.log_format, production=settings.is_production), settings.log_level
)

# prometheus-client's multiprocess mode: every worker writes its values to files here,
# and a scrape of any worker sums them. It must be set before a worker imports the client.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="gateway-metrics-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server: object) -> None:
    # Values left by an earlier run would be summed with this one's.
    for stale in Path(_metrics_dir).glob("*.db"):
        stale.unlink()


class _Worker(Protocol):
    """What ``child_exit`` reads of gunicorn's worker (gunicorn ships no types)."""

    pid: int


def child_exit(server: object, worker: _Worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
