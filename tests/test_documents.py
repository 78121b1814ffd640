"""Each GraphQL document is parsed and validated once, and answers exactly as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from resolvers import documents
from tests.conftest import Gateway, SeededDatabase, make_settings, running_gateway

PAGE = "query Cached { products(first: 2) { edges { node { name } } } }"


@pytest.fixture
async def gateway(seeded: SeededDatabase, tmp_path: Path) -> AsyncIterator[Gateway]:
    """The response cache and compiled reads off: every request must reach Strawberry's
    parser (on PostgreSQL the compiled lane answers a repeat without parsing it)."""
    settings = make_settings(seeded.url, tmp_path, cache_enabled=False, compiled_reads=False)
    async with running_gateway(settings, seeded.backend) as gw:
        yield gw


async def post(gateway: Gateway, query: str) -> dict[str, Any]:
    response = await gateway.client.post("/graphql", json={"query": query})
    assert response.headers["X-Cache"] == "BYPASS"
    body: dict[str, Any] = response.json()
    return body


async def test_a_repeated_document_is_parsed_once_and_answers_the_same(gateway: Gateway) -> None:
    first = await post(gateway, PAGE)
    before = documents._parse.cache_info()
    again = [await post(gateway, PAGE) for _ in range(3)]
    after = documents._parse.cache_info()
    assert after.hits - before.hits == 3
    assert after.misses == before.misses
    assert "errors" not in first
    assert all(body == first for body in again)


async def test_invalid_and_unparsable_documents_answer_the_same_every_time(
    gateway: Gateway,
) -> None:
    for query in ("{ nope }", "{ products(first: ", "{ products(first: 101) { totalCount } }"):
        answers = [await post(gateway, query) for _ in range(3)]
        assert answers[0]["data"] is None
        [error] = answers[0]["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        for answer in answers[1:]:
            [again] = answer["errors"]
            assert again["message"] == error["message"]
            assert again["extensions"]["code"] == error["extensions"]["code"]


async def test_the_cache_is_bounded() -> None:
    assert documents._parse.cache_info().maxsize == documents.MAX_DOCUMENTS
