"""Live order events over ``graphql-transport-ws``: ``subscription { orderUpdated(id) }``.

The WebSocket's principal comes from ``connection_init``'s payload
(``{"Authorization": "Bearer …"}`` or ``{"X-API-Key": "…"}``), resolved by the same
service as an HTTP request's headers; a credential that fails closes the socket with
4403 Forbidden (the protocol's code for a refused ``connection_init``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any

import strawberry
from graphql import ExecutionResult, GraphQLError
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from data.errors import DomainError, Invalid, Unauthenticated
from data.services import auth, orders
from resolvers.context import Context, Info
from resolvers.ids import database_id_of
from resolvers.types import Order

OVER_HTTP = (
    "Subscriptions are served over WebSocket: connect to /graphql with the "
    "graphql-transport-ws protocol."
)
CREDENTIAL_KEYS = {"authorization": "authorization", "x-api-key": "api_key"}


def credentials_of(payload: Mapping[str, Any]) -> dict[str, str | None]:
    """``Authorization`` and ``X-API-Key`` from a ``connection_init`` payload (any case)."""
    found: dict[str, str | None] = {"authorization": None, "api_key": None}
    for key, value in payload.items():
        name = CREDENTIAL_KEYS.get(str(key).lower())
        if name is None:
            continue
        if not isinstance(value, str):
            raise Unauthenticated(f"{key} must be a string.")
        found[name] = value
    return found


class TextFrames(ASGIWebSocketAdapter):
    """Sends every message as JSON in a text frame, as graphql-transport-ws clients expect.

    Strawberry's adapter sends a binary frame whenever the view encodes JSON to bytes
    (the router does, with orjson, for HTTP); the ``graphql-ws`` library and ``gql``
    refuse those.
    """

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(self.view.encode_json_string(message))
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


# What ``on_ws_connect`` answers to keep the connection with no payload of its own
# (strawberry types ``UNSET`` as Any).
KEEP: UnsetType = UNSET


class SubscriptionAuth:
    """The ``/graphql`` router's WebSocket hook (mixed into ``GatewayGraphQLRouter``)."""

    websocket_adapter_class = TextFrames

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticates the socket from ``connection_init``'s payload, as HTTP would."""
        payload = context.connection_params
        try:
            found = credentials_of(payload if isinstance(payload, Mapping) else {})
            if found["authorization"] is None and found["api_key"] is None:
                # No credential in the payload: the handshake's headers decided.
                if context.identity_error is not None:
                    raise context.identity_error
                return KEEP
            actor = await auth.resolve_credentials(
                context.db, context.tokens, found["authorization"], found["api_key"]
            )
        except DomainError as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.detail}) from exc
        context.use_actor(actor)
        return KEEP


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The order, as you may see it, each time it is placed or changes status."
    )
    async def order_updated(self, info: Info, id: strawberry.ID) -> AsyncGenerator[Order, None]:
        context = info.context
        order_id = database_id_of("Order", id)
        bus = context.events
        assert bus is not None, "the app's lifespan makes the bus"
        # Subscribe first, so a change committed while we check is not missed.
        async with bus.subscribe(order_id) as subscription:
            async with context.db.read() as session:
                await orders.find_order_to_follow(session, context.actor, order_id=order_id)
            async for _event in subscription:
                # Each event is answered with the order re-read as this principal sees it.
                context.refresh_loaders()
                async with context.db.read() as session:
                    row = await orders.find_order_to_follow(
                        session, context.actor, order_id=order_id
                    )
                yield Order.of(row)


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent as a plain HTTP request is refused before it runs, with a text
    that says where subscriptions are served: HTTP has no way to stream its events."""

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        request = getattr(ec.context, "request", None)
        if not isinstance(request, WebSocket) and ec.operation_type is OperationType.SUBSCRIPTION:
            refusal = Invalid(OVER_HTTP)
            ec.result = ExecutionResult(
                data=None, errors=[GraphQLError(refusal.detail, original_error=refusal)]
            )
            response = getattr(ec.context, "response", None)
            if response is not None:
                response.status_code = 400
        yield
