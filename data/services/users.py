"""Users as other objects reach them (review authors); accounts come with identity."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.inputs import storable_ids
from data.models import User


async def load_users(session: AsyncSession, actor: Actor, ids: Sequence[int]) -> list[User | None]:
    """Users by id, in key order; which fields show is the field rules' business."""
    stmt = select(User).where(User.id.in_(storable_ids(ids)))
    by_id = {u.id: u for u in (await session.scalars(stmt)).all()}
    return [by_id.get(i) for i in ids]
