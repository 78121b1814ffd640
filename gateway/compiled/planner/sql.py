"""SQL text that renders values exactly as the resolver path renders them.

Every expression here must produce the same JSON value the Python code produces for the
same row (``data.money.format_amount``, ``datetime.isoformat``, ``data.pagination``'s
cursors, Relay global ids); the differential test holds them to that, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Integer, String, Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.util import ClauseAdapter

from data.errors import Invalid
from data.pagination import PageRequest, Sort, decode_cursor

# Leads every compiled statement: it names them in pg_stat_statements, logs and tests.
MARK = "/* compiled */ "


class Unsupported(Exception):
    """The compiler does not cover this request: the caller falls back to the resolver path."""


class Unbindable(Exception):
    """A request's value that the plan of its shape cannot take (the reference answers)."""


Source = Callable[[Any], Any]


@dataclass(frozen=True, eq=False)
class Bound:
    """A value the statement takes as a parameter, and how to find it in another request
    of the same shape: ``source(values)`` gives it again from that request's values (the
    interface's: coerced GraphQL variables, a REST path and query). A source replays every
    check the compiler made on the value and raises where the answer would differ."""

    value: Any
    source: Source

    def map(self, fn: Callable[[Any], Any]) -> Bound:
        source = self.source
        return Bound(fn(self.value), lambda values: fn(source(values)))


def plain(value: Any) -> Any:
    """The value itself, bound or not (what the compiler's checks look at)."""
    return value.value if isinstance(value, Bound) else value


def mapped(value: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn(value)``, still bound to its source when it was."""
    return value.map(fn) if isinstance(value, Bound) else fn(value)


def require(check: Callable[[Any], bool]) -> Callable[[Any], Any]:
    """The identity, for values that pass ``check`` (else ``Unbindable``)."""

    def checked(value: Any) -> Any:
        if not check(value):
            raise Unbindable(repr(value)[:80])
        return value

    return checked


@dataclass
class Statement:
    """SQL under construction: numbered parameters (asyncpg ``$n``) and fresh aliases;
    ``sources[i]`` is where parameter ``i`` comes from in a request (``None``: a constant
    of the shape, such as a literal of the document)."""

    params: list[Any] = field(default_factory=list)
    sources: list[Source | None] = field(default_factory=list)
    aliases: int = 0

    def alias(self, prefix: str) -> str:
        self.aliases += 1
        return f"{prefix}{self.aliases}"

    def param(self, value: Any, sql_type: str) -> str:
        if isinstance(value, Bound):
            self.params.append(value.value)
            self.sources.append(value.source)
        else:
            self.params.append(value)
            self.sources.append(None)
        return f"${len(self.params)}::{sql_type}"


def bind(params: Sequence[Any], sources: Sequence[Source | None], values: Any) -> tuple[Any, ...]:
    """A plan's parameters for another request of its shape (``Unbindable``, or whatever a
    source raised, when a value cannot take the plan)."""
    return tuple(p if s is None else s(values) for p, s in zip(params, sources, strict=True))


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves the dialect's __init__ unannotated


def predicate(clause: ColumnElement[bool], table: Any, alias: str) -> str:
    """A ``data.policy`` predicate (a SQLAlchemy expression) as SQL over ``alias``."""
    adapted = ClauseAdapter(table.alias(alias)).traverse(clause)
    return str(adapted.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))


def iso(column: str, *, aware: bool) -> str:
    """``datetime.isoformat()`` of a naive-UTC timestamp, ``+00:00`` when ``aware``."""
    return (
        f"(to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN date_part('microseconds', {column})::bigint % 1000000 = 0 THEN '' "
        f"ELSE to_char({column}, '.US') END" + (" || '+00:00')" if aware else ")")
    )


def money_amount(cents: str) -> str:
    """``data.money.format_amount`` in SQL."""
    return (
        f"(CASE WHEN {cents} < 0 THEN '-' ELSE '' END || (abs({cents}) / 100)::text || '.' "
        f"|| lpad((abs({cents}) % 100)::text, 2, '0'))"
    )


def global_id(type_name: str, id_column: str) -> str:
    """``resolvers.ids.to_global_id``: standard base64 of ``Type:id`` (short: no line breaks)."""
    return f"encode(convert_to('{type_name}:' || {id_column}::text, 'UTF8'), 'base64')"


def _ascii_json_string(column: str) -> str:
    """``json.dumps(text)`` with ``ensure_ascii``: PostgreSQL's own escaping when the text is
    printable ASCII, else character by character (rare: only name-sorted cursors get here)."""
    slow = (
        "(SELECT '\"' || string_agg(CASE "
        "WHEN ch = '\"' THEN '\\\"' WHEN ch = '\\' THEN '\\\\' "
        "WHEN ch = E'\\n' THEN '\\n' WHEN ch = E'\\r' THEN '\\r' WHEN ch = E'\\t' THEN '\\t' "
        "WHEN ch = E'\\b' THEN '\\b' WHEN ch = E'\\f' THEN '\\f' "
        "WHEN ascii(ch) BETWEEN 32 AND 126 THEN ch "
        "WHEN ascii(ch) < 65536 THEN '\\u' || lpad(to_hex(ascii(ch)), 4, '0') "
        "ELSE '\\u' || to_hex(55296 + ((ascii(ch) - 65536) >> 10)) "
        "|| '\\u' || to_hex(56320 + ((ascii(ch) - 65536) & 1023)) END, '' ORDER BY n) || '\"' "
        f"FROM regexp_split_to_table({column}, '') WITH ORDINALITY AS s(ch, n))"
    )
    return (
        f"(CASE WHEN {column} ~ '^[ -~]*$' THEN to_json({column})::text "
        f"WHEN {column} = '' THEN '\"\"' ELSE {slow} END)"
    )


def _cursor_value(column: InstrumentedAttribute[Any], alias: str) -> str:
    ref = f"{alias}.{column.key}"
    column_type = column.property.columns[0].type
    if isinstance(column_type, DateTime):
        return f"'\"' || {iso(ref, aware=False)} || '\"'"
    if isinstance(column_type, Integer):
        return f"{ref}::text"
    if isinstance(column_type, String | Text):
        return _ascii_json_string(ref)
    raise Unsupported("cursor column type")  # pragma: no cover - a programming error


def cursor(scope: str, sort: Sort, alias: str) -> str:
    """``data.pagination.encode_cursor`` of the row ``alias``."""
    values = " || ',' || ".join(_cursor_value(c, alias) for c in sort.columns)
    payload = f"'[\"{scope}\",\"{sort.name}\",[' || {values} || ']]'"
    return f"rtrim(translate(encode(convert_to({payload}, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"


def _sql_type(column: InstrumentedAttribute[Any]) -> str:
    column_type = column.property.columns[0].type
    if isinstance(column_type, DateTime):
        return "timestamp"
    if isinstance(column_type, Integer):
        return "int"
    return "text"


def _order(sort: Sort, alias: str, backward: bool) -> str:
    direction = "DESC" if sort.descending != backward else "ASC"
    return ", ".join(f"{alias}.{c.key} {direction}" for c in sort.columns)


@dataclass(frozen=True)
class Window:
    """A validated page request over one sort: the SQL pieces of ``data.pagination``."""

    scope: str
    sort: Sort
    request: PageRequest

    @classmethod
    def of(cls, scope: str, sort: Sort, request: PageRequest) -> Window:
        """``Invalid`` requests and cursors are left to the resolver path (it reports them)."""
        try:
            request.validate()
            for value in (request.after, request.before):
                if value is not None:
                    decode_cursor(scope, sort, plain(value))
        except Invalid as exc:
            raise Unsupported("invalid page request") from exc
        return cls(scope, sort, request)

    def keyset(self, stmt: Statement, alias: str) -> list[str]:
        filters = []
        key = "(" + ", ".join(f"{alias}.{c.key}" for c in self.sort.columns) + ")"
        scope, sort = self.scope, self.sort
        for value, later in ((self.request.after, True), (self.request.before, False)):
            if value is None:
                continue
            decoded = mapped(value, lambda text: decode_cursor(scope, sort, text))
            params = ", ".join(
                stmt.param(mapped(decoded, itemgetter(i)), _sql_type(c))
                for i, c in enumerate(sort.columns)
            )
            op = ">" if later != self.sort.descending else "<"
            filters.append(f"{key} {op} ({params})")
        return filters

    def fetch_order(self, alias: str) -> str:
        return _order(self.sort, alias, self.request.backward)
