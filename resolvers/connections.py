"""Relay connections over the data layer's ``Page``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry

from data.pagination import Page

NodeT = TypeVar("NodeT")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list has (runs on demand).")
    async def total_count(self) -> int:
        return await self.count()


def to_connection(
    page: Page[Any], wrap: Callable[[Any], NodeT], count: Callable[[], Awaitable[int]]
) -> Connection[NodeT]:
    return Connection(
        edges=[Edge(cursor=e.cursor, node=wrap(e.node)) for e in page.edges],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        count=count,
    )
