"""ASGI pieces of the response cache: answering from an entry, replaying a read body,
stamping ``X-Cache``, and the route a hit would have taken (for logs and metrics)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Scope, Send

from gateway.cache.store import Entry

GRAPHQL_PATH = "/graphql"


class Route:
    """What the access log and metrics read from ``scope["route"]`` when a hit skips
    routing: the template of the route that would have answered, and ``label``, when
    known, the whole route with the prefixes of the routers that include it (the front
    door's ``route_of`` reads it rather than work it out again)."""

    def __init__(self, path_format: str, label: str | None = None) -> None:
        self.path = self.path_format = path_format
        self.label = label


def route_of(path: str) -> Route:
    parts = path.split("/")  # ["", "api", "v1", "products", "7", "reviews"]
    if len(parts) == 4:
        template = "/" + parts[3]
    elif len(parts) == 5:
        template = "/products/{product_id}" if parts[3] == "products" else "/categories/{slug}"
    else:
        template = "/products/{product_id}/reviews"
    return ROUTES.setdefault(template, Route(template))


ROUTES: dict[str, Route] = {GRAPHQL_PATH: Route(GRAPHQL_PATH, GRAPHQL_PATH)}


def stamped(send: Send, header: tuple[bytes, bytes]) -> Send:
    async def send_stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return send_stamped


def etag_matches(etag: bytes, wanted: bytes) -> bool:
    if wanted.strip() == b"*":
        return True
    return etag in {tag.strip().removeprefix(b"W/") for tag in wanted.split(b",")}


async def read_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole body (``None`` past ``limit``) and a ``receive`` that replays it."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit or not message.get("more_body", False):
            break
    complete = messages[-1]["type"] == "http.request" and not messages[-1].get("more_body")
    body = b"".join(m.get("body", b"") for m in messages) if complete and size <= limit else None

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, replay


def mark_hit(scope: Scope, interface: str) -> None:
    """What the access log and metrics would have read from routing and Strawberry."""
    if interface == "graphql":
        scope["route"] = ROUTES[GRAPHQL_PATH]
        scope["state"]["graphql"] = scope["state"].pop("graphql_hit", None)
    else:
        scope["route"] = route_of(scope["path"])


async def send_entry(
    send: Callable[[Message], Awaitable[None]],
    entry: Entry,
    result: tuple[bytes, bytes],
    wanted: bytes | None,
) -> None:
    if wanted is not None:
        for name, value in entry.headers:
            if name == b"etag":
                if etag_matches(value, wanted):
                    headers = [h for h in entry.headers if h[0] in (b"etag", b"link")]
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 304,
                            "headers": [*headers, result],
                        }
                    )
                    await send({"type": "http.response.body", "body": b""})
                    return
                break
    await send(
        {"type": "http.response.start", "status": entry.status, "headers": [*entry.headers, result]}
    )
    await send({"type": "http.response.body", "body": entry.body})
