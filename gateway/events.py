"""The app's event bus: made from the settings, fed by commits, ended at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from data.db import Database
from data.events import EventBus, create_bus
from data.principals import PrincipalCache
from gateway.health import DRAIN
from gateway.redis_client import subscriber
from gateway.settings import Settings


@asynccontextmanager
async def running_event_bus(
    db: Database,
    settings: Settings,
    principals: PrincipalCache | None = None,
) -> AsyncIterator[EventBus]:
    """A started bus that publishes every committed order event, closed on exit.

    Open streams end as soon as shutdown begins (``DRAIN``), not at lifespan shutdown:
    the server waits for open responses before that, and a stream never ends by itself.
    Their clients reconnect (to another instance) as the ``retry`` advice says.
    ``principals``, when given, hears of every revocation the bus carries.
    """
    bus = create_bus(
        subscriber(settings, name=f"{settings.redis_prefix}:events"),
        prefix=settings.redis_prefix,
        queue_size=settings.events_queue_size,
    )
    if principals is not None:
        bus.remember_principals(principals)
    await bus.start()
    db.on_commit(bus.publish_changes)
    loop = asyncio.get_running_loop()

    def end_streams_soon() -> None:
        # DRAIN.begin runs in a signal handler: only schedule the work on the loop.
        loop.call_soon_threadsafe(bus.end_streams)

    unhook = DRAIN.on_begin(end_streams_soon)
    try:
        yield bus
    finally:
        unhook()
        await bus.close()
