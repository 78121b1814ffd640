"""gunicorn settings for ``gateway serve --workers N``: uvicorn workers."""

import os

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
worker_class = "uvicorn.workers.UvicornWorker"
timeout = int(os.environ.get("GATEWAY_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GATEWAY_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
