"""Batch loads answer in key order: the dataloader contract."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def in_key_order(rows: Iterable[T], ids: Sequence[Any]) -> list[T | None]:
    """``rows`` arranged as ``ids`` asks (by ``row.id``), ``None`` where none matched."""
    by_id = {row.id: row for row in rows}  # type: ignore[attr-defined]
    return [by_id.get(i) for i in ids]
