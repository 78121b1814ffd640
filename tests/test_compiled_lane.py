"""The compiled lane (gateway/compiled/lane.py) answers a repeated compiled read exactly
as the full pipeline does - status, headers, body bytes - and leaves everything else to it.

Two apps over one PostgreSQL database: compiled reads (and so the lane) on, and off. The
first request of a document through the compiled app goes through the pipeline and is
remembered; its repeat comes from the lane, in either response media type; both must
equal the resolver path's answer.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.compiled import lane as compiled_lane
from gateway.compiled.lane import CompiledLane
from resolvers.router import GatewayGraphQLRouter
from tests.compiled_corpus import generate, rest_calls
from tests.compiled_pair import Pair, pair_fixture  # noqa: F401  (provides ``pair``)
from tests.principals import PRINCIPALS
from tests.test_compiled_differential import (
    ACCEPTS,
    CATALOG_PAGE,
    GRAPHQL_RESPONSE,
    PRODUCT_PAGE,
    _facts,
    accept_for,
)

pytestmark = pytest.mark.postgres
DOCUMENTS = 200
HEADERS = ("content-type", "content-length", "x-cache", "etag")


def _differs(got: Any, want: Any) -> str | None:
    if got.status_code != want.status_code:
        return f"status {got.status_code} != {want.status_code}"
    for name in HEADERS:
        if got.headers.get(name) != want.headers.get(name):
            return f"header {name}: {got.headers.get(name)} != {want.headers.get(name)}"
    if got.content != want.content:
        return f"body\n  lane     {got.content[:800]!r}\n  resolved {want.content[:800]!r}"
    return None


@pytest.fixture
def lane_answers(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies the lane answered with (each request it left to the pipeline: none)."""
    answered: list[bytes] = []
    real = CompiledLane._answer

    async def spy(self: CompiledLane, *args: Any) -> Any:
        result = await real(self, *args)
        if result is not None:
            answered.append(result[1])
        return result

    monkeypatch.setattr(CompiledLane, "_answer", spy)
    return answered


async def test_repeats_of_a_generated_corpus_are_byte_identical(
    pair: Pair, lane_answers: list[bytes]
) -> None:
    world = pair.world
    facts = await _facts(pair.resolved, world.headers["admin"], world.inactive_product)
    failures, runs = [], 0
    for i, doc in enumerate(generate(facts, DOCUMENTS, seed=23)):
        who = PRINCIPALS[i % len(PRINCIPALS)]
        headers = {**world.headers[who], "X-Request-ID": "lane"}
        # The plan remembered under one Accept is answered under another too.
        other = ACCEPTS[2] if accept_for(i).get("Accept") != GRAPHQL_RESPONSE else ACCEPTS[1]
        body = {"query": doc.query, "variables": doc.variables}
        for attempt, accept in (
            ("first", accept_for(i)),
            ("repeat", accept_for(i)),
            ("other type", other),
        ):
            resolved = await pair.resolved.client.post(
                "/graphql", json=body, headers={**headers, **accept}
            )
            got = await pair.compiled.client.post(
                "/graphql", json=body, headers={**headers, **accept}
            )
            runs += 1
            problem = _differs(got, resolved)
            if problem:
                failures.append(
                    f"#{i} {attempt} as {who} {accept}: {problem}\n"
                    f"  query {doc.query}\n  variables {doc.variables}"
                )
    assert not failures, f"{len(failures)} of {runs} differ:\n" + "\n\n".join(failures[:5])
    # Most documents compile, so most repeats must have come from the lane.
    assert len(lane_answers) > DOCUMENTS, len(lane_answers)


async def test_a_repeat_is_answered_without_fastapi_routing_or_strawberry(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {**pair.world.headers["customer"], "X-Request-ID": "no-framework"}
    page = {"query": CATALOG_PAGE}
    first = await pair.compiled.client.post("/graphql", json=page, headers=headers)
    assert first.status_code == 200
    assert b'"errors"' not in first.content

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the GraphQL router ran")

    monkeypatch.setattr(GatewayGraphQLRouter, "run", broken)
    with pair.compiled.count_statements() as counter:
        again = await pair.compiled.client.post("/graphql", json=page, headers=headers)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["x-request-id"] == "no-framework"
    assert again.headers["x-content-type-options"] == "nosniff"  # the stack still ran
    assert [s.startswith("/* compiled */") for s in counter.statements][-1:] == [True]
    assert again.headers["content-type"] == "application/json"
    typed = await pair.compiled.client.post(
        "/graphql", json=page, headers={**headers, "Accept": GRAPHQL_RESPONSE}
    )
    assert typed.status_code == 200
    assert typed.content == first.content
    assert typed.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    # Accepting neither type is the (here broken) pipeline's 406 to answer.
    neither = await pair.compiled.client.post(
        "/graphql", json=page, headers={**headers, "Accept": "text/html"}
    )
    assert neither.status_code == 500
    # A document never answered before goes to the (here broken) pipeline.
    other = await pair.compiled.client.post(
        "/graphql",
        headers=headers,
        json={"query": "{ categories(first: 2) { edges { node { slug } } } }"},
    )
    assert other.status_code == 500


LEFT_TO_THE_PIPELINE = {
    "bad token": ({"Authorization": "Bearer not-a-token"}, {}),
    "persisted query extension": (
        {},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
    ),
    "unknown body field": ({}, {"debug": True}),
    "text content type": ({"Content-Type": "text/plain"}, {}),
    "accepts neither media type": ({"Accept": "text/html"}, {}),
}


@pytest.mark.parametrize("case", sorted(LEFT_TO_THE_PIPELINE))
async def test_what_the_lane_does_not_take_answers_as_the_pipeline_does(
    pair: Pair, lane_answers: list[bytes], case: str
) -> None:
    extra_headers, extra_body = LEFT_TO_THE_PIPELINE[case]
    page = {"query": CATALOG_PAGE}
    primed = await pair.compiled.client.post("/graphql", json=page)  # remembered for anyone
    assert primed.status_code == 200
    lane_answers.clear()
    headers = {"X-Request-ID": "left", "Content-Type": "application/json", **extra_headers}
    content = json.dumps({**page, **extra_body})
    got = await pair.compiled.client.post("/graphql", content=content, headers=headers)
    want = await pair.resolved.client.post("/graphql", content=content, headers=headers)
    assert lane_answers == []
    assert _differs(got, want) is None, (got.content, want.content)


async def test_a_product_gone_since_is_the_pipelines_not_found(
    pair: Pair, lane_answers: list[bytes]
) -> None:
    """The lane runs the remembered statement every time: a product hidden after its page
    was remembered is answered by the resolver path's NOT_FOUND, as without the lane."""
    world = pair.world
    product = world.active_product
    gid = base64.b64encode(f"Product:{product}".encode()).decode()
    page = {"query": PRODUCT_PAGE, "variables": {"id": gid}}
    headers = {"X-Request-ID": "gone"}
    assert (
        b'"errors"'
        not in (await pair.compiled.client.post("/graphql", json=page, headers=headers)).content
    )
    admin = world.headers["admin"]
    hide = await pair.compiled.client.patch(
        f"/api/v1/products/{product}", headers=admin, json={"is_active": False}
    )
    assert hide.status_code == 200, hide.text
    try:
        lane_answers.clear()
        got = await pair.compiled.client.post("/graphql", json=page, headers=headers)
        want = await pair.resolved.client.post("/graphql", json=page, headers=headers)
        assert b'"NOT_FOUND"' in want.content
        assert _differs(got, want) is None
        assert lane_answers == []  # the statement ran, found nothing, and stood aside
    finally:
        show = await pair.compiled.client.patch(
            f"/api/v1/products/{product}", headers=admin, json={"is_active": True}
        )
        assert show.status_code == 200


REST_HEADERS = ("content-type", "content-length", "etag", "link")


@pytest.fixture
def rest_lane_answers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The texts the lane's statements returned (REST's, and GraphQL's too)."""
    answered: list[Any] = []
    real = compiled_lane.fetch_raw

    async def spy(*args: Any) -> Any:
        body = await real(*args)
        if body is not None:
            answered.append(body)
        return body

    monkeypatch.setattr(compiled_lane, "fetch_raw", spy)
    return answered


def _rest_differs(got: Any, want: Any) -> str | None:
    if got.status_code != want.status_code:
        return f"status {got.status_code} != {want.status_code}"
    for name in REST_HEADERS:
        if got.headers.get(name) != want.headers.get(name):
            return f"header {name}: {got.headers.get(name)} != {want.headers.get(name)}"
    if got.content != want.content:
        return f"body\n  lane     {got.content[:800]!r}\n  resolved {want.content[:800]!r}"
    return None


async def test_repeats_of_generated_rest_reads_are_byte_identical(
    pair: Pair, rest_lane_answers: list[Any]
) -> None:
    world = pair.world
    facts = await _facts(pair.resolved, world.headers["admin"], world.inactive_product)
    calls = rest_calls(facts, 150, seed=29)
    failures, runs = [], 0
    for i, call in enumerate(calls):
        who = PRINCIPALS[i % len(PRINCIPALS)]
        headers = {**world.headers[who], "X-Request-ID": "rest-lane"}
        want = await pair.resolved.client.get(call.path, params=call.params, headers=headers)
        for attempt in ("first", "repeat"):
            got = await pair.compiled.client.get(call.path, params=call.params, headers=headers)
            runs += 1
            problem = _rest_differs(got, want)
            if problem:
                failures.append(f"#{i} {attempt} GET {call.path} {call.params} as {who}: {problem}")
    assert not failures, f"{len(failures)} of {runs} differ:\n" + "\n\n".join(failures[:5])
    assert len(rest_lane_answers) > len(calls) / 3, len(rest_lane_answers)


async def test_a_rest_repeat_keeps_etag_revalidation_and_link(
    pair: Pair, rest_lane_answers: list[Any]
) -> None:
    path = "/api/v2/products?limit=3"
    first = await pair.compiled.client.get(path)
    assert first.status_code == 200
    assert 'rel="next"' in first.headers["link"]
    again = await pair.compiled.client.get(path)
    assert rest_lane_answers  # the repeat came from the lane
    assert again.content == first.content
    assert again.headers["link"] == first.headers["link"]
    assert again.headers["x-request-id"]
    not_modified = await pair.compiled.client.get(
        path, headers={"If-None-Match": first.headers["etag"]}
    )
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    # Another host is another Link: not the remembered answer's.
    elsewhere = await pair.compiled.client.get(path, headers={"Host": "localhost"})
    assert elsewhere.status_code == 200
    assert elsewhere.headers["link"].startswith("<http://localhost/")


async def test_a_repeat_after_a_change_sends_the_new_data_in_both_interfaces(
    pair: Pair, lane_answers: list[bytes], rest_lane_answers: list[Any]
) -> None:
    """The lane re-sends its last answer only while PostgreSQL returns the same text: a
    renamed product shows at once, and as the resolver path shows it."""
    world = pair.world
    product = world.active_product
    gid = base64.b64encode(f"Product:{product}".encode()).decode()
    page = {"query": PRODUCT_PAGE, "variables": {"id": gid}}
    path = f"/api/v1/products/{product}"
    headers = {"X-Request-ID": "renamed"}
    admin = world.headers["admin"]
    original = (await pair.resolved.client.get(path)).json()["name"]
    for _ in range(3):  # remembered, then answered (and memoized) by the lane
        graphql = await pair.compiled.client.post("/graphql", json=page, headers=headers)
        rest = await pair.compiled.client.get(path, headers=headers)
    assert lane_answers
    assert rest_lane_answers
    assert original.encode() in graphql.content
    assert original.encode() in rest.content
    rename = await pair.compiled.client.patch(path, headers=admin, json={"name": "Renamed"})
    assert rename.status_code == 200, rename.text
    try:
        lane_answers.clear()
        rest_lane_answers.clear()
        for _ in range(2):
            got = await pair.compiled.client.post("/graphql", json=page, headers=headers)
            want = await pair.resolved.client.post("/graphql", json=page, headers=headers)
            assert b'"Renamed"' in got.content
            assert _differs(got, want) is None
            got = await pair.compiled.client.get(path, headers=headers)
            want = await pair.resolved.client.get(path, headers=headers)
            assert b'"Renamed"' in got.content
            assert _rest_differs(got, want) is None
        # Each repeat ran its statement in the lane (two GraphQL, two REST).
        assert len(lane_answers) == 2
        assert len(rest_lane_answers) == 4
    finally:
        back = await pair.compiled.client.patch(path, headers=admin, json={"name": original})
        assert back.status_code == 200
