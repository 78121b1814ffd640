"""Keyset (cursor) pagination, written once for every list in both interfaces.

A cursor is an opaque token holding the list it belongs to, the sort, and the sort key
of one row (always ending in the primary key, so keys are unique). Pages are found with
``WHERE (k1, k2, id) > (:k1, :k2, :id)``, never with offsets: a row inserted while a
client pages never shifts the rows that existed before. A cursor that does not decode,
or that belongs to another list or sort, is ``Invalid`` (400 ``BAD_USER_INPUT``).

Services return a ``Page``; REST wraps it as ``{data, next_cursor}``, GraphQL as a Relay
connection.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, Integer, Select, String, Text, func, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, aliased

from data.errors import FieldError, Invalid
from data.inputs import storable_int, storable_text

T = TypeVar("T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True)
class Sort:
    """One orderable key: its public name and the columns, ending in the primary key."""

    name: str
    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool = False


def sort_set(**keys: tuple[InstrumentedAttribute[Any], ...]) -> dict[str, Sort]:
    """Ascending and descending (``-name``) sorts for each key."""
    sorts: dict[str, Sort] = {}
    for name, columns in keys.items():
        sorts[name] = Sort(name, columns)
        sorts[f"-{name}"] = Sort(f"-{name}", columns, descending=True)
    return sorts


@dataclass(frozen=True)
class PageRequest:
    """Relay-style window: ``first``/``after`` forward or ``last``/``before`` backward."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    @property
    def backward(self) -> bool:
        return self.last is not None or (self.before is not None and self.first is None)

    @property
    def size(self) -> int:
        size = self.last if self.backward else self.first
        return DEFAULT_PAGE_SIZE if size is None else size

    def validate(self) -> PageRequest:
        if self.first is not None and self.last is not None:
            raise Invalid("Pass either first or last, not both.")
        for name, value in (("first", self.first), ("last", self.last)):
            if value is not None and not 1 <= value <= MAX_PAGE_SIZE:
                raise Invalid(
                    f"{name} must be between 1 and {MAX_PAGE_SIZE}.",
                    errors=[FieldError((name,), f"must be between 1 and {MAX_PAGE_SIZE}")],
                )
        return self


@dataclass(frozen=True)
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass(frozen=True)
class Page(Generic[T]):
    edges: list[Edge[T]]
    has_next_page: bool
    has_previous_page: bool

    @property
    def items(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @property
    def start_cursor(self) -> str | None:
        return self.edges[0].cursor if self.edges else None

    @property
    def end_cursor(self) -> str | None:
        return self.edges[-1].cursor if self.edges else None

    @property
    def next_cursor(self) -> str | None:
        """The cursor to continue forward from, or None on the last page."""
        return self.end_cursor if self.has_next_page else None


# -- cursors ---------------------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _decode_value(column: InstrumentedAttribute[Any], raw: Any) -> Any:
    column_type = column.property.columns[0].type
    if isinstance(column_type, DateTime):
        if not isinstance(raw, str):
            raise ValueError("timestamp expected")
        value = datetime.fromisoformat(raw)
        # Only what encode_cursor writes: naive UTC in isoformat, nothing looser.
        if value.tzinfo is not None or value.isoformat() != raw:
            raise ValueError("timestamp expected")
        return value
    if isinstance(column_type, Integer):
        if not storable_int(raw):
            raise ValueError("integer expected")
        return raw
    if isinstance(column_type, String | Text):
        if not storable_text(raw):
            raise ValueError("string expected")
        return raw
    raise ValueError("unsupported cursor column")  # pragma: no cover - a programming error


def encode_cursor(scope: str, sort: Sort, values: Sequence[Any]) -> str:
    payload = json.dumps(
        [scope, sort.name, [_encode_value(v) for v in values]], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(scope: str, sort: Sort, cursor: str) -> tuple[Any, ...]:
    """The sort key in ``cursor``, or ``Invalid`` if it is not a cursor of this list."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        cursor_scope, cursor_sort, raw_values = decoded
        if cursor_scope != scope or cursor_sort != sort.name:
            raise ValueError("cursor of another list")
        if not isinstance(raw_values, list) or len(raw_values) != len(sort.columns):
            raise ValueError("wrong arity")
        return tuple(_decode_value(c, v) for c, v in zip(sort.columns, raw_values, strict=True))
    # RecursionError: a cursor of thousands of nested brackets is bad input, not a crash.
    except (ValueError, TypeError, UnicodeError, binascii.Error, RecursionError) as exc:
        raise Invalid(
            "The cursor is not valid for this list.",
            errors=[FieldError(("cursor",), "invalid cursor")],
        ) from exc


# -- queries ---------------------------------------------------------------------------


def _order_by(sort: Sort, reverse: bool) -> list[Any]:
    descending = sort.descending != reverse
    return [c.desc() if descending else c.asc() for c in sort.columns]


def _keyset_filters(scope: str, sort: Sort, request: PageRequest) -> list[Any]:
    filters = []
    key = tuple_(*sort.columns)
    for cursor, later in ((request.after, True), (request.before, False)):
        if cursor is None:
            continue
        values = tuple_(*decode_cursor(scope, sort, cursor))
        # "later in the sort order" is ">" ascending and "<" descending.
        filters.append(key > values if later != sort.descending else key < values)
    return filters


def _row_key(sort: Sort, row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, c.key) for c in sort.columns)


def _make_page(scope: str, sort: Sort, request: PageRequest, rows: list[T]) -> Page[T]:
    size = request.size
    more = len(rows) > size
    rows = rows[:size]
    if request.backward:
        rows.reverse()
        has_next, has_previous = request.before is not None, more
    else:
        has_next, has_previous = more, request.after is not None
    edges = [Edge(encode_cursor(scope, sort, _row_key(sort, row)), row) for row in rows]
    return Page(edges, has_next_page=has_next, has_previous_page=has_previous)


async def paginate(
    session: Any, stmt: Select[Any], *, scope: str, sort: Sort, request: PageRequest
) -> Page[Any]:
    """One page of ``stmt`` (a ``select(Model)``) in one statement."""
    request.validate()
    stmt = stmt.where(*_keyset_filters(scope, sort, request))
    stmt = stmt.order_by(*_order_by(sort, request.backward)).limit(request.size + 1)
    rows = list((await session.scalars(stmt)).all())
    return _make_page(scope, sort, request, rows)


async def paginate_per_parent(
    session: Any,
    stmt: Select[Any],
    *,
    model: type[Any],
    parent: InstrumentedAttribute[Any],
    parent_ids: Sequence[Hashable],
    scope: str,
    sort: Sort,
    request: PageRequest,
) -> dict[Hashable, Page[Any]]:
    """A page for each parent, all in one statement (``row_number()`` per parent).

    This is how nested connections (``products { reviews(first: 3) }``) are batched.
    """
    request.validate()
    row_number = func.row_number().over(
        partition_by=parent, order_by=_order_by(sort, request.backward)
    )
    inner = (
        stmt.where(parent.in_(parent_ids), *_keyset_filters(scope, sort, request))
        .add_columns(row_number.label("_rn"))
        .subquery()
    )
    entity = aliased(model, inner)
    outer = (
        select(entity)
        .where(inner.c._rn <= request.size + 1)
        .order_by(inner.c[parent.key], inner.c._rn)
    )
    grouped: dict[Hashable, list[Any]] = defaultdict(list)
    for row in (await session.scalars(outer)).all():
        grouped[getattr(row, parent.key)].append(row)
    return {pid: _make_page(scope, sort, request, grouped.get(pid, [])) for pid in parent_ids}


def parse_sort(sorts: dict[str, Sort], name: str) -> Sort:
    try:
        return sorts[name]
    except KeyError:
        allowed = ", ".join(sorts)
        raise Invalid(
            f"Unknown sort {name!r}; use one of: {allowed}.",
            errors=[FieldError(("sort",), f"must be one of: {allowed}")],
        ) from None
