"""What the gateway's kept bypasses of its libraries rely on (docs/design/): private
names and signatures, checked as they are, each failure naming the installed version.

A library release that renames or changes one of them fails here first, loudly, rather
than somewhere on the hot path; then the bypass is fixed, or switched to the library's
own way (the setting its design record names) and measured again.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import uvicorn
import uvicorn.protocols.http.httptools_impl as httptools_impl
from uvicorn.server import ServerState


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


UVICORN = f"uvicorn {version('uvicorn')}"


async def test_uvicorn_has_what_the_gateways_protocol_uses() -> None:
    """gateway.http.protocol's head limits: a defence (a huge header held the event
    loop), not a speed-up, so kept without a stock switch; they feed the parser and
    refuse a head through these."""
    assert httptools_impl.STATUS_LINE[414] == b"HTTP/1.1 414 Request-URI Too Long\r\n", UVICORN
    protocol = httptools_impl.HttpToolsProtocol
    instance = protocol(uvicorn.Config(app=None), server_state=ServerState(), app_state={})
    for name in ("parser", "pipeline", "cycle", "server_state"):
        assert hasattr(instance, name), f"{UVICORN}: HttpToolsProtocol has no {name}"
    for method in (
        "_unset_keepalive_if_required",
        "_should_upgrade",
        "_unsupported_upgrade_warning",
        "handle_websocket_upgrade",
        "send_400_response",
        "on_response_complete",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
    ):
        assert callable(getattr(protocol, method, None)), f"{UVICORN}: no {method}"


SQLALCHEMY = f"SQLAlchemy {version('sqlalchemy')}"


def test_sqlalchemy_pool_has_what_the_fair_pool_uses() -> None:
    """data.pool.FairAsyncPool: the checkout and return it wraps, the settings and queue
    it reads, and the entry's flags its lease checks."""
    from sqlalchemy.pool import AsyncAdaptedQueuePool
    from sqlalchemy.pool.base import _ConnectionFairy, _ConnectionRecord
    from sqlalchemy.util.queue import AsyncAdaptedQueue

    assert _parameters(AsyncAdaptedQueuePool._do_get) == ["self"], SQLALCHEMY
    assert _parameters(AsyncAdaptedQueuePool._do_return_conn) == ["self", "record"], SQLALCHEMY
    pool = AsyncAdaptedQueuePool(lambda: None, pool_size=3, max_overflow=2, timeout=7.0)
    assert (pool._max_overflow, pool._timeout, pool._recycle) == (2, 7.0, -1), SQLALCHEMY
    assert isinstance(pool._pool, AsyncAdaptedQueue), SQLALCHEMY
    assert callable(pool._pool.get_nowait), SQLALCHEMY
    assert callable(pool._pool.put_nowait), SQLALCHEMY
    assert isinstance(pool._invalidate_time, (int, float)), SQLALCHEMY
    for name in ("fresh", "starttime", "dbapi_connection", "info", "_soft_invalidate_time"):
        assert hasattr(_ConnectionRecord, name) or name in _ConnectionRecord.__slots__, (
            f"{SQLALCHEMY}: a pool entry has no {name}"
        )
    source = inspect.getsource(AsyncAdaptedQueuePool.__mro__[1]._do_get)  # QueuePool's
    assert "Empty" in source, f"{SQLALCHEMY}: QueuePool._do_get no longer waits on its queue"
    checkout = inspect.getsource(_ConnectionRecord.checkout) + inspect.getsource(
        _ConnectionFairy._checkout
    )
    assert "fresh" in checkout, f"{SQLALCHEMY}: pre-ping no longer skips a fresh record"


STRUCTLOG = f"structlog {version('structlog')}"


def test_structlog_has_what_the_access_lines_template_uses() -> None:
    """gateway.observability.logging.AccessLog: the lines it writes itself are
    structlog's (tests/test_observability.py holds them to the same bytes); these are
    the names and forms it copies."""
    import contextvars
    import re

    import structlog
    from structlog.contextvars import STRUCTLOG_KEY_PREFIX

    from gateway.observability.logging import utc_now_iso

    assert STRUCTLOG_KEY_PREFIX == "structlog_", STRUCTLOG
    tokens = structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        bound = {
            var.name: value
            for var, value in contextvars.copy_context().items()
            if var.name.startswith(STRUCTLOG_KEY_PREFIX)
        }
        assert bound == {"structlog_request_id": "r-1"}, STRUCTLOG
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)(None, "info", {})
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")
    assert iso.fullmatch(stamp["timestamp"]), f"{STRUCTLOG}: {stamp['timestamp']}"
    assert iso.fullmatch(utc_now_iso())
