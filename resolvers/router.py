"""The ``/graphql`` router: Strawberry's, with a transport that never answers text.

Strawberry answers malformed requests (a body of ``null``, bad JSON, a wrong content
type, a mutation over GET) with ``text/plain``, and some of them (``null``, ``123``)
with a 500. Here every refusal is GraphQL-shaped JSON with ``extensions.code``; JSON is
decoded by orjson (which refuses invalid UTF-8 and nesting deeper than 1,024 levels
instead of recursing); batches run in order, one operation after another; persisted
queries are resolved before Strawberry sees the request. The answer's media type is
negotiated from ``Accept`` (``resolvers.media``): ``application/graphql-response+json``
gives a request refused before execution its 4xx status and no ``data`` entry.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.http import process_result as strawberry_process_result
from strawberry.http.types import QueryParams
from strawberry.schema.base import BaseSchema
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from data.errors import malformed_body
from data.loaders import build_loaders
from resolvers.context import Context
from resolvers.limits import DEFAULT_LIMITS, GraphQLLimits
from resolvers.media import (
    CONTENT_TYPES,
    GRAPHQL_RESPONSE,
    JSON,
    NOT_ACCEPTABLE,
    negotiate,
    request_error_status,
)
from resolvers.persisted import Persisted
from resolvers.subscriptions import SubscriptionAuth

STATUS_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 429: "RATE_LIMITED"}


class TransportError(HTTPException):
    """A request refused before any operation runs, with its code and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_USER_INPUT",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message)
        self.code = code
        self.headers = headers or {}


def graphql_error_body(message: str, code: str, request_id: str | None = None) -> bytes:
    """The JSON of a request-level GraphQL error (no ``data``: nothing ran)."""
    extensions: dict[str, Any] = {"code": code}
    if request_id:
        extensions["request_id"] = request_id
    return orjson.dumps({"errors": [{"message": message, "extensions": extensions}]})


def _error_result(error: GraphQLError, request: Any) -> ExecutionResult:
    """A request-level error as a result, with the request id every error carries."""
    state = getattr(request, "state", None)
    request_id = getattr(state, "request_id", None)
    if state is not None:  # refused before it ran: the rate limit gives its cost back
        flags = getattr(state, "graphql_refused", None)
        if flags is None:
            state.graphql_refused = flags = []
        flags.append(True)
    if request_id and "request_id" not in (error.extensions or {}):
        error.extensions = {**(error.extensions or {}), "request_id": request_id}
    return ExecutionResult(data=None, errors=[error])


class GatewayGraphQLRouter(SubscriptionAuth, GraphQLRouter[Context, None]):  # type: ignore[misc]  # websocket_adapter_class: strawberry's own GraphQLRouter sets it under an ignore too
    def __init__(
        self,
        schema: BaseSchema,
        *,
        limits: GraphQLLimits = DEFAULT_LIMITS,
        persisted: Persisted | None = None,
        batching: bool = True,
        ide_html: Callable[[], str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(schema, **kwargs)
        self.limits = limits
        self.persisted = persisted or Persisted()
        self.batching = batching
        self.ide_html = ide_html

    # Responses.

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET with only a persisted query's hash is an operation, not a visit.
        return (
            super().should_render_graphql_ide(request)
            and request.query_params.get("extensions") is None
        )

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if context is not UNSET and context is not None:
            context.limits = self.limits  # the limits extension reads them here
        media = JSON
        try:
            if isinstance(request, Request):  # not a WebSocket
                media = self._media(request)
            response = await super().run(request, context=context, root_value=root_value)
        except HTTPException as exc:
            code = getattr(exc, "code", None) or STATUS_CODES.get(exc.status_code, "BAD_USER_INPUT")
            request_id = getattr(getattr(request, "state", None), "request_id", None)
            return Response(
                graphql_error_body(exc.reason, code, request_id),
                status_code=exc.status_code,
                media_type=CONTENT_TYPES[media],
                headers=getattr(exc, "headers", None),
            )
        if media == GRAPHQL_RESPONSE and not isinstance(response, HTMLResponse):
            response.headers["content-type"] = CONTENT_TYPES[media]
            refused = getattr(request.state, "graphql_refused_status", None)
            if refused is not None and response.status_code == 200:
                response.status_code = refused
        return response

    def _media(self, request: Request) -> str:
        """The negotiated media type (kept on the request for ``process_result``); a
        request that accepts neither is 406, unless it is a visit to the IDE."""
        accept = request.headers.getlist("accept")  # several lines are one list
        media = negotiate(",".join(accept) if accept else None)
        if media is None:
            if self.should_render_graphql_ide(self.request_adapter_class(request)):
                return JSON
            raise TransportError(406, NOT_ACCEPTABLE)
        request.state.graphql_media = media
        return media

    async def process_result(
        self,
        request: Any,
        result: ExecutionResult,
    ) -> GraphQLHTTPResponse:
        processed = strawberry_process_result(result)
        state = request.state
        if (
            getattr(state, "graphql_media", JSON) == GRAPHQL_RESPONSE
            and result.data is None
            and result.errors
            and all(error.path is None for error in result.errors)
        ):
            # Refused before execution (a field error always has a path): no data entry,
            # and a 4xx status for a single operation (a batch's own status stays 200).
            processed.pop("data", None)
            if not getattr(state, "graphql_batch", False):
                state.graphql_refused_status = request_error_status(
                    [error.formatted for error in result.errors]
                )
        return processed

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    @property
    def graphql_ide_html(self) -> str:
        return self.ide_html() if self.ide_html is not None else super().graphql_ide_html

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.graphql_ide_html)

    # Parsing.

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)  # orjson.JSONDecodeError is a json.JSONDecodeError

    def parse_json(self, data: str | bytes) -> Any:
        """A request body: one operation (an object) or a batch (an array of them)."""
        try:
            decoded = self.decode_json(data)
        except json.JSONDecodeError as exc:
            raise TransportError(400, _malformed(data, exc)) from None
        if isinstance(decoded, list):
            if not decoded:
                raise TransportError(400, "A batch must hold at least one operation.")
            if not all(isinstance(item, dict) for item in decoded):
                raise TransportError(400, "Each operation in a batch must be an object.")
        elif not isinstance(decoded, dict):
            raise TransportError(
                400, "The request body must be a JSON object (or an array of them for a batch)."
            )
        return decoded

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        parsed: dict[str, Any] = dict(params)
        for name in ("variables", "extensions"):
            if parsed.get(name):
                try:
                    parsed[name] = self.decode_json(parsed[name])
                except json.JSONDecodeError:
                    raise TransportError(400, f"The {name} parameter is not valid JSON.") from None
        return parsed

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST":
            content_type = (request.content_type or "").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise TransportError(415, "Send the operation as application/json.")
        return await super().parse_http_body(request)

    def _validate_batch_request(
        self, request_data: list[GraphQLRequestData], protocol: GraphQLRequestProtocol
    ) -> None:
        if not self.batching:
            raise TransportError(400, "Batching is disabled: send one operation per request.")
        if len(request_data) > self.limits.max_batch:
            raise TransportError(
                400,
                f"The batch holds {len(request_data)} operations; the "
                f"batch limit is {self.limits.max_batch}.",
            )
        if protocol != "http":
            raise TransportError(400, "Batches cannot be streamed.")

    # Execution.

    async def execute_operation(
        self,
        request: Any,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: Any,
        context: Any,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        if not isinstance(request_data, list):
            return await super().execute_operation(
                request=request,
                request_adapter=request_adapter,
                request_data=request_data,
                context=context,
                root_value=root_value,
                sub_response=sub_response,
            )
        # One after another, in order: an operation sees the writes of those before it,
        # and no two operations share loaders (their caches would hide those writes).
        request.state.graphql_batch = True
        results = []
        for index, data in enumerate(request_data):
            if index and hasattr(context, "loaders"):
                context.loaders = build_loaders(context.db, context.actor)
            try:
                results.append(
                    await self.execute_single(
                        request=request,
                        request_adapter=request_adapter,
                        sub_response=sub_response,
                        context=context,
                        root_value=root_value,
                        request_data=data,
                    )
                )
            except TransportError as exc:
                results.append(
                    _error_result(GraphQLError(exc.reason, extensions={"code": exc.code}), request)
                )
            except HTTPException as exc:
                results.append(
                    _error_result(
                        GraphQLError(exc.reason, extensions={"code": "BAD_USER_INPUT"}), request
                    )
                )
        return results

    async def execute_single(
        self,
        request: Any,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> Any:
        try:
            query = await self.persisted.resolve(request_data.query, request_data.extensions)
        except GraphQLError as error:
            return _error_result(error, request)
        if query is None:
            raise TransportError(400, "No GraphQL query found in the request.")
        request_data = dataclasses.replace(request_data, query=query)
        try:
            return await super().execute_single(
                request=request,
                request_adapter=request_adapter,
                sub_response=sub_response,
                context=context,
                root_value=root_value,
                request_data=request_data,
            )
        except HTTPException as exc:
            if isinstance(exc.__cause__, InvalidOperationTypeError):
                raise TransportError(
                    405,
                    "Only queries may be sent with GET; send mutations with POST.",
                    headers={"Allow": "POST"},
                ) from exc
            if isinstance(exc.__cause__, MissingQueryError):
                raise TransportError(400, "No GraphQL query found in the request.") from exc
            raise


def _malformed(data: str | bytes, exc: json.JSONDecodeError) -> str:
    """Where and why the body does not parse, worded as REST words it: the standard
    library's parser (REST's) names the cause; orjson's refusals it accepts (nesting past
    1,024 levels, ``NaN``) keep a general message."""
    try:
        json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as stdlib:
        return malformed_body(stdlib).detail
    except RecursionError:
        pass
    return (
        "The request body is not valid JSON (UTF-8, nested at most 1,024 levels, "
        f"no NaN or Infinity): {exc.msg}."
    )
