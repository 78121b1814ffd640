"""Logs: JSON lines (or console lines in development) through structlog.

The gateway's own events and the stdlib records of uvicorn, gunicorn and SQLAlchemy go
through one ``ProcessorFormatter``, so every line has the same shape and carries the
request id bound by the front door (gateway.http.front). A last processor blanks any field whose
name says it holds a secret: nothing logs headers or bodies, and this makes sure.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import functools
import logging
import logging.config
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
import structlog
from structlog.contextvars import STRUCTLOG_KEY_PREFIX
from structlog.types import EventDict, Processor

from data.running import process_id

LOG_FORMATS = ("auto", "json", "console")
SECRET_FIELD = re.compile(r"pass(word)?|secret|token|authorization|api[-_]?key|cookie", re.I)
REDACTED = "[redacted]"
# Loggers of the servers: their handlers are dropped so their records reach the root's.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn.error", "gunicorn.access")
# uvicorn's access line is replaced by the gateway's own (gateway.http.front, logger
# gateway.access).
SILENT_LOGGERS = ("uvicorn.access",)
QUIET_LOGGERS = ("httpx", "httpcore")


def redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    for key in event_dict:
        if _is_secret(key):
            event_dict[key] = REDACTED
    return event_dict


@functools.lru_cache(maxsize=1024)
def _is_secret(key: str) -> bool:
    """Field names are few and fixed: each is searched once, not once per line."""
    return SECRET_FIELD.search(key) is not None


def add_pid(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Which worker wrote the line (several share one stream under gunicorn)."""
    event_dict["pid"] = process_id()  # getpid would be a system call on every line
    return event_dict


# Dates and dataclasses go to structlog's fallback, as they did with ``json``.
PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON lines through orjson (several times faster than ``json`` on every request);
    ``json`` for what orjson refuses (keys that are not strings, huge integers)."""
    try:
        return orjson.dumps(value, default=kwargs.get("default"), option=PASSTHROUGH).decode()
    except TypeError:
        import json

        return json.dumps(value, **kwargs)


def resolve_format(log_format: str, *, production: bool) -> str:
    """``auto`` is JSON in production or when stderr is not a terminal, else console."""
    if log_format != "auto":
        return log_format
    return "json" if production or not sys.stderr.isatty() else "console"


def _pre_chain() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_pid,
        redact_secrets,
    ]


def _json_renderer() -> structlog.processors.JSONRenderer:
    return structlog.processors.JSONRenderer(dumps)


class JsonLines(logging.StreamHandler[TextIO]):
    """The root's handler: a stream handler that can also take ready-made lines in
    batches (``write_line``), written together after ``delay`` seconds.

    A write per access line was one system call per request. A record that
    comes the usual way (``emit``), a ``flush()`` and the interpreter's exit write the
    waiting lines first, so the stream keeps the order the lines were made in.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.pending: list[bytes] = []  # JSON lines, UTF-8
        self.timer: asyncio.TimerHandle | None = None
        self.due = 0.0

    def write_line(self, line: bytes, delay: float) -> None:
        self.acquire()
        try:
            self.pending.append(line)
            if self.timer is not None and time.monotonic() > self.due + 1.0:
                self.timer = None  # its loop stopped before it fired: write now
            if delay > 0 and self.timer is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    pass  # no loop to come back: written now
                else:
                    self.timer = loop.call_later(delay, self._timed_flush)
                    self.due = time.monotonic() + delay
                    return
            if self.timer is None:
                self.flush()
        finally:
            self.release()

    def _timed_flush(self) -> None:
        self.timer = None
        self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            if self.pending:
                lines, self.pending = self.pending, []
                try:
                    self.stream.write((b"\n".join(lines) + b"\n").decode())
                except Exception:  # as the stdlib's: a broken log stream fails no request
                    pass
            super().flush()
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        if self.pending:
            self.flush()
        super().emit(record)


# The root's handler while ``configure_logging`` has it writing JSON lines: AccessLog's.
_json_sink: JsonLines | None = None


class AccessLog:
    """``structlog.get_logger(name).info(event, **fields)``, for the line of every request.

    Through structlog and the stdlib a line costs a record, a caller lookup, two
    processor chains and a flush: more than a compiled read itself. While the
    root logger's only handler is the JSON stream ``configure_logging`` set up, the same
    processors make the same line here and that handler writes it, with the lines of
    the next ``flush_seconds`` (``LOG_FLUSH_SECONDS``); under any other set-up (console
    lines, a test's capture) it goes the usual way.

    ``request`` writes the front door's line, the same bytes, from a remembered prefix
    per route, status and principal: building, redacting and encoding the dict was a
    tenth of a REST read's instructions.
    """

    def __init__(self, name: str, flush_seconds: float = 0.0, *, tuned: bool = True) -> None:
        self.flush_seconds = flush_seconds
        # ``tuned=False`` (``ACCESS_LOG_LINES=stock``): every line through structlog
        self.tuned = tuned
        self.log = structlog.get_logger(name)
        self.logger = logging.getLogger(name)
        self.render = _json_renderer()
        # (method, route, status, principal, operation) -> the text around the values
        # that change on every line: the duration, the request id and the time.
        self.templates: dict[tuple[Any, ...], tuple[str, str, str] | None] = {}

    def _sink(self) -> JsonLines | None:
        """The JSON stream when this line may be written to it directly: it is the root's
        only handler, with no filters, and the line's level is enabled."""
        sink = _json_sink
        if not self.tuned:
            return None
        handlers = logging.root.handlers
        if sink is None or len(handlers) != 1 or handlers[0] is not sink or sink.filters:
            return None
        return sink

    def info(self, event: str, fields: dict[str, Any]) -> None:
        """One line; ``fields`` becomes the line's dict (the caller's is not kept)."""
        sink = self._sink()
        if sink is None:
            self.log.info(event, **fields)
            return
        if sink.level > logging.INFO or not self.logger.isEnabledFor(logging.INFO):
            return
        # The pre-chain's processors (``_pre_chain``), inlined: on every request their
        # calls, the timestamp's datetime and the redaction's scan were most of the line.
        event_dict: EventDict = fields
        event_dict["event"] = event
        context = contextvars.copy_context()
        for var in context:  # merge_contextvars
            name = var.name
            if name.startswith(STRUCTLOG_KEY_PREFIX):
                value = context[var]
                if value is not Ellipsis:
                    event_dict.setdefault(name[len(STRUCTLOG_KEY_PREFIX) :], value)
        event_dict["level"] = "info"  # add_log_level
        event_dict["logger"] = self.logger.name  # add_logger_name
        event_dict["timestamp"] = utc_now_iso()  # TimeStamper(fmt="iso", utc=True)
        event_dict["pid"] = process_id()  # add_pid
        if not event_dict.keys() <= _ACCESS_KEYS:  # redact_secrets
            for key in event_dict:
                if key not in _ACCESS_KEYS and _is_secret(key):
                    event_dict[key] = REDACTED
        try:  # the JSON renderer's ``dumps``, without its two wrappers
            line = orjson.dumps(event_dict, default=_fallback, option=PASSTHROUGH)
        except TypeError:
            rendered = self.render(self.logger, "info", event_dict)  # a str from ``dumps``
            line = rendered.encode() if isinstance(rendered, str) else rendered
        sink.write_line(line, self.flush_seconds)

    def request(
        self,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        principal: str,
        operation: tuple[str | None, str, str] | None,
        request_id: ContextVar[Any],
    ) -> None:
        """The front door's line: ``info("request", {...})`` with these fields (and the
        operation's as ``operation``, ``operation_type`` and ``outcome``).

        Only ``request_id`` may be bound in structlog's context, and to a request id
        the front door made or accepted (letters, digits and ``._:-``): then the line
        is the remembered text with the duration, the id and the time put in, which is
        what orjson writes for that dict (a test holds the two to the same bytes).
        Anything else (another bound variable, a duration in exponent form) goes to
        ``info``.
        """
        sink = self._sink()
        bound: object = ...
        if sink is not None:
            context = contextvars.copy_context()
            for var in context:
                if var is request_id:
                    bound = context[var]
                elif var.name.startswith(STRUCTLOG_KEY_PREFIX) and context[var] is not ...:
                    sink = None  # something else is bound: the general path merges it
                    break
        template: tuple[str, str, str] | None = None
        if (
            sink is not None
            and type(bound) is str
            and SAFE_REQUEST_ID.fullmatch(bound)
            and type(duration_ms) is float
            and 0.0 <= duration_ms < 1e15
        ):
            if sink.level > logging.INFO or not self.logger.isEnabledFor(logging.INFO):
                return
            key = (method, route, status, principal, operation)
            known = self.templates.get(key, ...)
            if known is ...:
                known = self.templates[key] = self._template(
                    _request_fields(method, route, status, duration_ms, principal, operation)
                )
            template = known
        if template is None or sink is None:
            self.info(
                "request", _request_fields(method, route, status, duration_ms, principal, operation)
            )
            return
        head, middle, tail = template
        sink.write_line(
            f"{head}{duration_ms!r}{middle}{bound}{tail}{utc_now_iso()}"
            f'","pid":{process_id()}}}'.encode(),
            self.flush_seconds,
        )

    def _template(self, fields: dict[str, Any]) -> tuple[str, str, str] | None:
        """The line ``info`` makes of ``fields``, cut around the duration, the request id
        and the timestamp (each of them written in by ``request``); ``None`` if the cut
        does not give back orjson's own line (then ``info`` writes every such line)."""
        if len(self.templates) >= 4096:  # principals come and go: bounded, as the metrics
            self.templates.clear()
        mark = "\x00"
        fields = {
            **fields,
            "event": "request",
            "request_id": mark,
            "level": "info",
            "logger": self.logger.name,
            "timestamp": mark,
        }
        for key in fields:
            if key not in _ACCESS_KEYS and _is_secret(key):
                fields[key] = REDACTED
        fields["duration_ms"] = 0.0
        try:
            text = orjson.dumps(fields, default=_fallback, option=PASSTHROUGH).decode()
        except TypeError:
            return None
        head, _, rest = text.partition('"duration_ms":0.0')
        middle, _, rest = rest.partition('"\\u0000"')
        tail, _, _ = rest.partition('"\\u0000"')
        template = head + '"duration_ms":', middle + '"', '"' + tail + '"'
        pid = process_id()
        fields.update(duration_ms=12.34, request_id="id", timestamp="now", pid=pid)
        made = f'{template[0]}12.34{template[1]}id{template[2]}now","pid":{pid}}}'
        line = orjson.dumps(fields, default=_fallback, option=PASSTHROUGH).decode()
        return template if made == line else None


# A request id the gateway takes from a caller (gateway.http.front), and the access line can
# carry as it is: nothing JSON would escape.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _request_fields(
    method: str,
    route: str,
    status: int,
    duration_ms: float,
    principal: str,
    operation: tuple[str | None, str, str] | None,
) -> dict[str, Any]:
    """The front door's fields as ``AccessLog.info`` takes them."""
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
        "principal": principal,
    }
    if operation is not None:
        fields["operation"], fields["operation_type"], fields["outcome"] = operation
    return fields


def _fallback(value: Any) -> Any:
    """What structlog's JSON renderer makes of a value JSON has no form for."""
    structlog_form = getattr(value, "__structlog__", None)
    return structlog_form() if callable(structlog_form) else repr(value)


# The access line's own keys, none of them a secret's name (checked by a test).
_ACCESS_KEYS = frozenset(
    {
        "method",
        "route",
        "status",
        "duration_ms",
        "principal",
        "operation",
        "operation_type",
        "outcome",
        "event",
        "request_id",
        "level",
        "logger",
        "timestamp",
        "pid",
    }
)


_second = -1
_second_text = ""
_second_micro = "%s.%06dZ"


def utc_now_iso() -> str:
    """``datetime.now(timezone.utc).isoformat()`` with ``Z`` for ``+00:00`` (structlog's
    ISO stamp), the date and time formatted once a second."""
    global _second, _second_text, _second_micro
    now = time.time()
    second = int(now)
    if second != _second:
        _second_text = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
        _second_micro = _second_text.replace("%", "%%") + ".%06dZ"
        _second = second
    micro = int((now - second) * 1_000_000)
    return _second_micro % micro if micro else _second_text + "Z"


def formatter(log_format: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """The one formatter for every record (a ``()`` factory for ``dictConfig``)."""
    renderer: list[Processor]
    if log_format == "console":
        renderer = [structlog.dev.ConsoleRenderer()]
    else:
        renderer = [structlog.processors.format_exc_info, _json_renderer()]
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        foreign_pre_chain=_pre_chain(),
    )


def logging_config(
    log_format: str, level: str = "INFO", stream: TextIO | str = "ext://sys.stdout"
) -> dict[str, Any]:
    """A ``dictConfig`` document: one handler on the root, the servers propagating to it.

    gunicorn takes it as ``logconfig_dict``; ``configure_logging`` applies it in-process.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": formatter, "log_format": log_format}},
        "handlers": {
            "default": {
                "class": "gateway.observability.logging.JsonLines",
                "formatter": "structlog",
                "stream": stream,
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in SERVER_LOGGERS},
            **{name: {"handlers": [], "propagate": False} for name in SILENT_LOGGERS},
            # httpx logs every URL it fetches at INFO, query string (and any token) included.
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


def configure_logging(log_format: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog and the stdlib through the one formatter (idempotent)."""
    global _json_sink
    assert log_format in ("json", "console"), log_format
    logging.config.dictConfig(
        logging_config(log_format, level, stream if stream is not None else "ext://sys.stdout")
    )
    handler = logging.getLogger().handlers[0]
    _json_sink = handler if log_format == "json" and isinstance(handler, JsonLines) else None
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_pre_chain(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
