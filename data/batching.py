"""Batch loads answer in key order: the dataloader contract."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar


class Identified(Protocol):
    """A row with an integer ``id`` (every model the loaders batch)."""

    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=Identified)


def in_key_order(rows: Iterable[T], ids: Sequence[int]) -> list[T | None]:
    """``rows`` arranged as ``ids`` asks (by ``row.id``), ``None`` where none matched."""
    by_id = {row.id: row for row in rows}
    return [by_id.get(i) for i in ids]
