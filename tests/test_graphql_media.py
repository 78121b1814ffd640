"""GraphQL over HTTP's two response media types, chosen from ``Accept``.

``application/graphql-response+json`` when the client prefers it: a request refused before
execution (parse, validation, variable coercion, a bad credential, an unknown persisted
query) is a 4xx without a ``data`` entry, an executed operation is 200. ``application/json``
(no ``Accept``, wildcards, or asked for): every GraphQL error is 200, as always. Neither
acceptable: 406. The same on every path that answers ``/graphql``: the router, batches,
GET, persisted queries, the response cache and the HTTP limits.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway.http.limits import RequestLimitsMiddleware
from resolvers.media import negotiate, request_error_status
from tests.cache_world import CacheWorld
from tests.conftest import Gateway, SeededDatabase, make_settings, running_gateway

GQL = "application/graphql-response+json"
GQL_TYPE = "application/graphql-response+json; charset=utf-8"
JSON = "application/json"
RECOMMENDED = "application/graphql-response+json; charset=utf-8, application/json; charset=utf-8"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

NEGOTIATION = [
    (None, JSON),
    ("", JSON),
    ("  ", JSON),
    (JSON, JSON),
    (GQL, GQL),
    ("APPLICATION/GRAPHQL-RESPONSE+JSON", GQL),
    ("*/*", JSON),
    ("application/*", JSON),
    ("application/*, */*", JSON),
    (RECOMMENDED, GQL),
    # Equal q-values: the one listed first.
    (f"{GQL}, {JSON}", GQL),
    (f"{JSON}, {GQL}", JSON),
    # q-values first.
    (f"{JSON};q=0.9, {GQL}", GQL),
    (f"{GQL};q=0.5, {JSON}", JSON),
    (f"{JSON};q=0.5, {GQL};q=0.9", GQL),
    # A named type outranks a wildcard of the same q, whatever the order...
    (f"*/*, {GQL}", GQL),
    (f"application/*, {GQL}", GQL),
    # ... but not one of a higher q.
    (f"{GQL};q=0.5, */*", JSON),
    (f"{GQL}, */*;q=0.1", GQL),
    (BROWSER, JSON),
    # q=0 refuses a type even where a wildcard would allow it.
    (f"{JSON};q=0, */*", GQL),
    (f"{GQL};q=0, */*", JSON),
    (f"{JSON};q=0", None),
    (f"{GQL};q=0, {JSON};q=0, */*", None),
    # Only UTF-8 is answered.
    (f"{GQL};charset=utf-8", GQL),
    (f"{GQL};charset=latin1", None),
    (f"{GQL};charset=latin1, {JSON}", JSON),
    # Malformed elements are ignored.
    (f"{JSON};q=abc, {GQL};q=0.2", GQL),
    (f"{GQL};q=2, {JSON};q=0.1", JSON),
    ("text/html", None),
    ("application/xml", None),
    ("text/event-stream", None),
    ("nonsense", None),
]


@pytest.mark.parametrize(("accept", "chosen"), NEGOTIATION)
def test_negotiation_follows_q_values_specificity_and_order(
    accept: str | None, chosen: str | None
) -> None:
    assert negotiate(accept) == chosen


def test_a_refused_request_takes_its_first_client_errors_status() -> None:
    def errors(*codes: str) -> list[dict[str, Any]]:
        return [{"message": "x", "extensions": {"code": code}} for code in codes]

    assert request_error_status(errors("BAD_USER_INPUT")) == 400
    assert request_error_status(errors("UNAUTHENTICATED")) == 401
    assert request_error_status(errors("INTERNAL", "FORBIDDEN")) == 403
    assert request_error_status(errors("INTERNAL")) == 500
    assert request_error_status(errors("SOMETHING_NEW")) == 400
    assert request_error_status([{"message": "no extensions"}]) == 400


async def post(gateway: Gateway, body: Any, accept: str | None = None, **headers: str) -> Any:
    if accept is not None:
        headers["accept"] = accept
    return await gateway.client.post(
        "/graphql", content=orjson.dumps(body), headers={"content-type": JSON, **headers}
    )


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, JSON),
        (JSON, JSON),
        ("*/*", JSON),
        (BROWSER, JSON),
        (GQL, GQL_TYPE),
        (RECOMMENDED, GQL_TYPE),
        (f"{JSON};q=0.5, {GQL}", GQL_TYPE),
    ],
)
async def test_a_query_answers_in_the_media_type_it_accepts(
    gateway: Gateway, accept: str | None, content_type: str
) -> None:
    response = await post(gateway, {"query": "{ categories(first: 2) { totalCount } }"}, accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.json()["data"]["categories"]["totalCount"] > 0


async def test_several_accept_lines_are_read_as_one_list(gateway: Gateway) -> None:
    headers = [("content-type", JSON), ("accept", "text/html"), ("accept", GQL)]
    response = await gateway.client.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers=headers
    )
    assert (response.status_code, response.headers["content-type"]) == (200, GQL_TYPE)


async def test_accepting_neither_type_is_406(gateway: Gateway) -> None:
    query = {"query": "{ __typename }"}
    for accept in ("text/html", "application/xml", f"{JSON};q=0"):
        response = await post(gateway, query, accept)
        assert response.status_code == 406, (accept, response.text)
        assert response.headers["content-type"] == JSON
        [error] = response.json()["errors"]
        assert GQL in error["message"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
    by_get = await gateway.client.get(
        "/graphql", params=query, headers={"accept": "application/xml"}
    )
    assert by_get.status_code == 406
    # A browser's visit without a query is still the console, not a refusal.
    console = await gateway.client.get("/graphql", headers={"accept": "text/html"})
    assert console.status_code == 200
    assert console.headers["content-type"].startswith("text/html")


REQUEST_ERRORS: dict[str, dict[str, Any]] = {
    "document parsing": {"query": "{"},
    "document validation": {"query": "{ noSuchField }"},
    "variable coercion": {
        "query": "query($id: ID!) { product(id: $id) { name } }",
        "variables": {"id": None},
    },
    "depth limit": {
        "query": "{ categories { edges { node { products { edges { node { "
        "category { products { edges { node { category { products { "
        "edges { node { name } } } } } } } } } } } } } } }"
    },
}


@pytest.mark.parametrize("case", sorted(REQUEST_ERRORS))
async def test_request_errors_are_400_without_data_only_under_graphql_response_json(
    gateway: Gateway, case: str
) -> None:
    body = REQUEST_ERRORS[case]
    legacy = await post(gateway, body, JSON)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == JSON
    assert legacy.json()["data"] is None
    assert legacy.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    response = await post(gateway, body, GQL)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == GQL_TYPE
    assert "data" not in response.json()
    assert response.json()["errors"] == [
        {
            **error,
            "extensions": {**error["extensions"], "request_id": response.headers["x-request-id"]},
        }
        for error in legacy.json()["errors"]
    ]


async def test_executed_operations_stay_200_with_their_data_and_field_errors(
    gateway: Gateway,
) -> None:
    cases = {
        # A field rule: the field is null, the rest of the data is kept.
        "{ products(first: 2) { edges { node { name stock } } } }": "FORBIDDEN",
        '{ product(sku: "SKU-NONE") { name } }': "NOT_FOUND",
        # A non-null root field's error makes data null: still an executed operation.
        "{ viewer { name } }": "UNAUTHENTICATED",
    }
    for query, code in cases.items():
        response = await post(gateway, {"query": query}, GQL)
        assert response.status_code == 200, (query, response.text)
        assert response.headers["content-type"] == GQL_TYPE
        body = response.json()
        assert "data" in body
        assert body["errors"][0]["extensions"]["code"] == code
        assert body["errors"][0]["path"]


async def test_a_bad_credential_is_401_under_graphql_response_json(gateway: Gateway) -> None:
    query = {"query": "{ __typename }"}
    bad = {"authorization": "Bearer not-a-token"}
    legacy = await post(gateway, query, JSON, **bad)
    assert legacy.status_code == 200
    assert legacy.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await post(gateway, query, GQL, **bad)
    assert response.status_code == 401
    assert response.headers["content-type"] == GQL_TYPE
    assert "data" not in response.json()
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_transport_refusals_speak_the_negotiated_type(gateway: Gateway) -> None:
    for accept, content_type in ((None, JSON), (GQL, GQL_TYPE)):
        headers = {"content-type": JSON, **({"accept": accept} if accept else {})}
        broken = await gateway.client.post("/graphql", content=b'{"query": ', headers=headers)
        assert (broken.status_code, broken.headers["content-type"]) == (400, content_type)
        missing = await gateway.client.post(
            "/graphql", content=b'{"qeury": "{ a }"}', headers=headers
        )
        assert (missing.status_code, missing.headers["content-type"]) == (400, content_type)
        assert "data" not in missing.json()
        for sent_as in ("text/plain", GQL):  # a response type, not a request body's
            text = await gateway.client.post(
                "/graphql",
                content=b'{"query": "{ a }"}',
                headers={**headers, "content-type": sent_as},
            )
            assert (text.status_code, text.headers["content-type"]) == (415, content_type)
        too_big = await gateway.client.post(
            "/graphql", content=b'{"query": "' + b" " * 1_100_000 + b'{ a }"}', headers=headers
        )
        assert (too_big.status_code, too_big.headers["content-type"]) == (413, content_type)


async def test_get_negotiates_as_post_does(gateway: Gateway) -> None:
    accept = {"accept": GQL}
    ok = await gateway.client.get("/graphql", params={"query": "{ __typename }"}, headers=accept)
    assert (ok.status_code, ok.headers["content-type"]) == (200, GQL_TYPE)
    assert ok.json() == {"data": {"__typename": "Query"}}
    broken = await gateway.client.get("/graphql", params={"query": "{"}, headers=accept)
    assert (broken.status_code, broken.headers["content-type"]) == (400, GQL_TYPE)
    assert "data" not in broken.json()
    legacy = await gateway.client.get("/graphql", params={"query": "{"})
    assert (legacy.status_code, legacy.headers["content-type"]) == (200, JSON)
    mutation = await gateway.client.get(
        "/graphql",
        params={"query": 'mutation { logout(input: {refreshToken: "x"}) }'},
        headers=accept,
    )
    assert (mutation.status_code, mutation.headers["content-type"]) == (405, GQL_TYPE)
    assert mutation.headers["allow"] == "POST"


async def test_a_batch_is_200_with_each_result_in_the_types_shape(gateway: Gateway) -> None:
    batch = [{"query": "{"}, {"query": "{ __typename }"}, {"variables": {}}]
    response = await post(gateway, batch, GQL)
    assert response.status_code == 200
    assert response.headers["content-type"] == GQL_TYPE
    refused, ran, empty = response.json()
    assert "data" not in refused
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert ran == {"data": {"__typename": "Query"}}
    assert "data" not in empty
    legacy = await post(gateway, batch, JSON)
    assert (legacy.status_code, legacy.headers["content-type"]) == (200, JSON)
    assert [("data" in result) for result in legacy.json()] == [True, True, True]
    assert legacy.json()[0]["data"] is None


async def test_persisted_queries_negotiate_too(gateway: Gateway) -> None:
    unknown = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
    legacy = await post(gateway, unknown, JSON)
    assert legacy.status_code == 200
    assert legacy.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    response = await post(gateway, unknown, GQL)
    assert (response.status_code, response.headers["content-type"]) == (400, GQL_TYPE)
    assert "data" not in response.json()
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    query = "{ categories(first: 1) { totalCount } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    registered = await post(gateway, {"query": query, "extensions": extensions}, GQL)
    assert (registered.status_code, registered.headers["content-type"]) == (200, GQL_TYPE)
    by_hash = await post(gateway, {"extensions": extensions}, GQL)
    assert (by_hash.status_code, by_hash.headers["content-type"]) == (200, GQL_TYPE)
    assert by_hash.content == registered.content


async def test_allow_list_refusals_are_403_under_graphql_response_json(
    seeded: SeededDatabase, tmp_path: Path
) -> None:
    documents = tmp_path / "operations"
    documents.mkdir()
    allowed = "{ categories(first: 1) { totalCount } }"
    (documents / "count.graphql").write_text(allowed)
    settings = make_settings(
        seeded.url, tmp_path, graphql_allowlist=documents, graphql_allowlist_only=True
    )
    async with running_gateway(settings, seeded.backend) as gateway:
        ok = await post(gateway, {"query": allowed}, GQL)
        assert (ok.status_code, ok.headers["content-type"]) == (200, GQL_TYPE)
        other = {"query": "{ products(first: 1) { totalCount } }"}
        refused = await post(gateway, other, GQL)
        assert (refused.status_code, refused.headers["content-type"]) == (403, GQL_TYPE)
        assert "data" not in refused.json()
        assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_NOT_IN_SAFELIST"
        legacy = await post(gateway, other, JSON)
        assert (legacy.status_code, legacy.headers["content-type"]) == (200, JSON)


@pytest.mark.parametrize(("accept", "content_type"), [(None, JSON), (GQL, GQL_TYPE)])
async def test_the_time_limit_answers_in_the_negotiated_type(
    accept: str | None, content_type: str
) -> None:
    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(30)

    middleware = RequestLimitsMiddleware(
        slow_app, max_body_bytes=10, max_query_string_bytes=10, timeout_seconds=0.1
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"accept", accept.encode())] if accept else []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": headers,
        "query_string": b"",
        "state": {},
    }
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 504
    assert (b"content-type", content_type.encode()) in sent[0]["headers"]
    assert b'"code":"TIMEOUT"' in sent[1]["body"]


CATALOG = "{ products(first: 3) { edges { node { databaseId name price { amount } } } } }"


async def test_the_cache_never_serves_one_media_type_for_the_other(cache_world: CacheWorld) -> None:
    client = cache_world.client
    seen: dict[tuple[str, str], list[Any]] = {}
    for method in ("POST", "GET"):
        for accept, content_type in (
            (JSON, JSON),
            (GQL, GQL_TYPE),
            (JSON, JSON),
            (GQL, GQL_TYPE),
            (RECOMMENDED, GQL_TYPE),
            ("*/*", JSON),
        ):
            headers = {"accept": accept}
            if method == "POST":
                response = await client.post("/graphql", json={"query": CATALOG}, headers=headers)
            else:
                response = await client.get("/graphql", params={"query": CATALOG}, headers=headers)
            assert response.status_code == 200
            assert response.headers["content-type"] == content_type, (method, accept)
            seen.setdefault((method, content_type), []).append(response)
    for (method, content_type), responses in seen.items():
        # The first of each method and type computed it; every later one was its hit.
        assert [r.headers["x-cache"] for r in responses] == ["MISS"] + ["HIT"] * (
            len(responses) - 1
        ), (method, content_type)
        assert len({r.content for r in responses}) == 1
    # Accepting neither bypasses the cache for the router's 406.
    refused = await client.post(
        "/graphql", json={"query": CATALOG}, headers={"accept": "text/html"}
    )
    assert (refused.status_code, refused.headers["x-cache"]) == (406, "BYPASS")
