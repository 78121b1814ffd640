"""Changes recorded by a write reach the commit listeners after commit, before the reply."""

from __future__ import annotations

from typing import Any

from data.changes import CATALOG, Changes
from tests.conftest import Gateway
from tests.principals import World


async def test_rest_write_commits_and_announces_before_the_response_starts(world: World) -> None:
    gateway: Gateway = world.gateway
    seen: list[str] = []

    async def listener(changes: Changes) -> None:
        seen.append("commit:" + ",".join(sorted(changes.tags)))

    gateway.app.state.db.on_commit(listener)
    inner = gateway.app.middleware_stack

    async def watch(scope: Any, receive: Any, send: Any) -> None:
        async def send_and_note(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen.append(f"response:{message['status']}")
            await send(message)

        await inner(scope, receive, send_and_note)

    gateway.app.middleware_stack = watch
    try:
        response = await gateway.client.patch(
            "/api/v1/users/me", json={"name": "Cleo Renamed"}, headers=world.headers["customer"]
        )
    finally:
        gateway.app.middleware_stack = inner
        gateway.app.state.db._commit_listeners.remove(listener)
    assert response.status_code == 200, response.text
    # The name shows on the user's reviews: every catalog entry depends on ``catalog``.
    assert seen == [f"commit:{CATALOG}", "response:200"]


async def test_a_refused_write_announces_nothing(world: World) -> None:
    gateway: Gateway = world.gateway
    seen: list[Changes] = []

    async def listener(changes: Changes) -> None:
        seen.append(changes)

    gateway.app.state.db.on_commit(listener)
    try:
        response = await gateway.client.patch(
            "/api/v1/users/me", json={"name": ""}, headers=world.headers["customer"]
        )
    finally:
        gateway.app.state.db._commit_listeners.remove(listener)
    assert response.status_code == 400, response.text
    assert seen == []
