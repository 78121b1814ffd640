"""Which GraphQL documents the cache may share, and the cache's settings (no database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from data.actor import ANONYMOUS, api_key_actor, user_actor
from data.policy import visibility_class
from gateway.cache.documents import PUBLIC_FIELDS, DocumentPolicy
from gateway.cache.middleware import ResponseCache
from resolvers.schema import schema
from tests.conftest import make_settings

SHAREABLE = [
    "{ products { edges { node { name } } } }",
    "query Page { products(first: 2) { totalCount pageInfo { hasNextPage } } }",
    "{ product(id: 1) { name stock price { amount } category { slug } } }",
    '{ category(slug: "books") { products { edges { node { reviews { edges { node { '
    "author { name reviews { totalCount } } } } } } } } } }",
    "{ categories { edges { cursor node { __typename id databaseId } } } }",
    "query { ...P } fragment P on Query { products { edges { node { ... on Product { sku } "
    "...N } } } } fragment N on Product { name }",
    "{ a: products(first: 1) { totalCount } b: products(first: 2) { totalCount } }",
]
PRIVATE = [
    'mutation { logout(refreshToken: "x") }',
    "subscription { orderUpdated(id: 1) { status } }",
    "{ viewer { name } }",
    "{ products { edges { node { reviews { edges { node { author { email } } } } } } } }",
    "{ products { edges { node { reviews { edges { node { author { isActive } } } } } } } }",
    "{ products { edges { node { reviews { edges { node { author { createdAt } } } } } } } }",
    "{ products { edges { node { reviews { edges { node { author { orders { totalCount } } "
    "} } } } } } }",
    "{ product(id: 1) { name } orders { totalCount } }",
    '{ node(id: "x") { id } }',
    '{ nodes(ids: ["x"]) { id } }',
    "{ __schema { types { name } } }",
    '{ __type(name: "User") { name } }',
    "query { ...F } fragment F on Query { viewer { name } }",
    "query { ...F } fragment F on Query { ...F }",
    "query { products { edges { node { ...X } } } } fragment X on Product { ...X }",
    "{ products { edges { node { ... on User { email } } } } }",
    "{ products { nope } }",
    "{ products(first: 1) { edges { node { name } } }",  # syntax error
    "query A { products { totalCount } } query B { viewer { name } }",  # no operation name
]


@pytest.fixture(scope="module")
def policy() -> DocumentPolicy:
    return DocumentPolicy(schema._schema)


@pytest.mark.parametrize("document", SHAREABLE)
def test_catalog_documents_are_shareable(policy: DocumentPolicy, document: str) -> None:
    assert policy.shareable(document, None) is not None


@pytest.mark.parametrize("document", PRIVATE)
def test_private_or_unknown_documents_are_not(policy: DocumentPolicy, document: str) -> None:
    assert policy.shareable(document, None) is None


def test_operation_name_picks_the_operation(policy: DocumentPolicy) -> None:
    document = "query A { products { totalCount } } query B { viewer { name } }"
    chosen = policy.shareable(document, "A")
    assert chosen is not None
    assert chosen.operation == "A"
    assert policy.shareable(document, "B") is None
    assert policy.shareable(document, "C") is None


def test_layout_and_comments_do_not_change_the_digest(policy: DocumentPolicy) -> None:
    one = policy.shareable("{ products { totalCount } }", None)
    two = policy.shareable("# hello\nquery {\n  products\n  {  totalCount }\n}\n", None)
    other = policy.shareable("{ products(first: 1) { totalCount } }", None)
    assert one is not None
    assert two is not None
    assert other is not None
    assert one.digest == two.digest != other.digest


def test_the_allow_list_names_only_fields_the_schema_has() -> None:
    for type_name, fields in PUBLIC_FIELDS.items():
        graphql_type = schema._schema.get_type(type_name)
        assert graphql_type is not None, type_name
        assert fields <= set(graphql_type.fields), type_name  # type: ignore[union-attr]


def test_the_policy_cache_is_bounded() -> None:
    small = DocumentPolicy(schema._schema, max_documents=3)
    for n in range(10):
        small.shareable(f"{{ products(first: {n + 1}) {{ totalCount }} }}", None)
    assert len(small.seen) == 3


def test_the_policy_cache_keeps_the_document_in_use() -> None:
    """Least recently used out first: a document asked between newcomers stays."""
    small = DocumentPolicy(schema._schema, max_documents=3)
    decided: list[str] = []
    decide = small._decide

    def counted(document: str, operation_name: str | None) -> Any:
        decided.append(document)
        return decide(document, operation_name)

    small._decide = counted  # type: ignore[method-assign]
    hot = "{ categories { edges { node { slug } } } }"
    for n in range(10):
        assert small.shareable(hot, None) is not None
        small.shareable(f"{{ products(first: {n + 1}) {{ totalCount }} }}", None)
    assert decided.count(hot) == 1  # first in, never pushed out


def test_visibility_classes() -> None:
    assert visibility_class(ANONYMOUS) == "anonymous"
    assert visibility_class(user_actor(1, "customer")) == "authenticated"
    assert visibility_class(api_key_actor(1, {"orders:read"})) == "authenticated"
    assert visibility_class(user_actor(1, "staff")) == "catalog-full"
    assert visibility_class(user_actor(1, "admin")) == "catalog-full"
    assert visibility_class(api_key_actor(1, {"catalog:read"})) == "catalog-full"


def test_without_redis_several_workers_turn_the_cache_off(tmp_path: Path) -> None:
    url = "sqlite+aiosqlite:///unused"
    one = make_settings(url, tmp_path)
    several = make_settings(url, tmp_path, web_concurrency=4)
    shared = make_settings(url, tmp_path, web_concurrency=4, redis_url="redis://127.0.0.1:1/0")
    off = make_settings(url, tmp_path, cache_enabled=False)
    assert ResponseCache(one, schema._schema).enabled
    assert not ResponseCache(several, schema._schema).enabled
    assert ResponseCache(shared, schema._schema).enabled
    assert not ResponseCache(off, schema._schema).enabled
