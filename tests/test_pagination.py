"""Keyset pagination: whole walks in both interfaces, inserts while paging, bad cursors."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import select

from data.errors import Invalid
from data.models import Category, Product
from data.pagination import Edge, Page, PageRequest, decode_cursor, encode_cursor
from data.services.categories import CATEGORY_SORTS
from data.services.products import PRODUCT_SORTS
from data.services.reviews import REVIEW_SORTS
from tests.adapters import ORDER_BY
from tests.conftest import Gateway
from tests.oracle import SORTS, load_catalog

LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
PAGE = 9  # does not divide the seeded product count, so the last page is partial


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def raw_cursor(*payload: Any) -> str:
    return b64(json.dumps(list(payload)).encode())


# -- unit: encode / decode --------------------------------------------------------------


def test_cursor_round_trips_every_sort() -> None:
    values = {
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678000),
        "price": 1999,
        "name": "Eco Mug 7 ü",
    }
    for name, sort in PRODUCT_SORTS.items():
        key = (values[name.lstrip("-")], 42)
        cursor = encode_cursor("products", sort, key)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), "cursors are URL-safe, unpadded"
        assert decode_cursor("products", sort, cursor) == key


BAD_PRICE_CURSORS = {
    "empty": "",
    "not_base64": "!!!",
    "not_json": "bm90IGpzb24",
    "binary": b64(b"\xff\xfe\x00"),
    "empty_list": raw_cursor(),
    "number": b64(b"123"),
    "string": b64(b'"abc"'),
    "other_scope": raw_cursor("reviews", "price", [1999, 42]),
    "other_sort": raw_cursor("products", "-price", [1999, 42]),
    "short_key": raw_cursor("products", "price", [1999]),
    "long_key": raw_cursor("products", "price", [1999, 42, 7]),
    "key_not_a_list": raw_cursor("products", "price", {"a": 1}),
    "string_price": raw_cursor("products", "price", ["1999", 42]),
    "float_price": raw_cursor("products", "price", [19.99, 42]),
    "bool_price": raw_cursor("products", "price", [True, 42]),
    "null_price": raw_cursor("products", "price", [None, 42]),
    "price_over_int32": raw_cursor("products", "price", [2**31, 42]),
    "id_under_int32": raw_cursor("products", "price", [1999, -(2**31) - 1]),
    "nan": b64(b'["products","price",[NaN,42]]'),
}


@pytest.mark.parametrize("cursor", list(BAD_PRICE_CURSORS.values()), ids=list(BAD_PRICE_CURSORS))
def test_decode_rejects(cursor: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode_cursor("products", PRODUCT_SORTS["price"], cursor)
    assert caught.value.code == "BAD_USER_INPUT"
    assert [e.loc for e in caught.value.errors] == [("cursor",)]


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("created_at", "yesterday"),
        ("created_at", 5),
        ("created_at", "2026-01-01\x00"),
        ("created_at", "2026-01-01T00\x00"),
        ("created_at", "20260101"),
        ("created_at", "2026-01-01T00:00:00+05:00"),
        ("name", 5),
        ("name", "Eco\x00"),
        ("name", "\ud800"),
        ("name", None),
    ],
)
def test_decode_rejects_bad_values_of_each_type(sort: str, value: Any) -> None:
    with pytest.raises(Invalid):
        decode_cursor("products", PRODUCT_SORTS[sort], raw_cursor("products", sort, [value, 1]))


def test_page_requests_are_validated() -> None:
    assert PageRequest().size == 20
    assert PageRequest(last=3, before="x").backward
    assert PageRequest(before="x").backward
    assert not PageRequest(first=3, before="x").backward
    for bad in (PageRequest(first=101), PageRequest(last=-1), PageRequest(first=1, last=1)):
        with pytest.raises(Invalid):
            bad.validate()
    assert PageRequest(first=100).validate().size == 100


def test_a_page_continues_only_when_there_is_more() -> None:
    edges = [Edge("a", 1), Edge("b", 2)]
    assert Page(edges, has_next_page=True, has_previous_page=False).next_cursor == "b"
    assert Page(edges, has_next_page=False, has_previous_page=True).next_cursor is None
    empty = Page([], has_next_page=False, has_previous_page=False)
    assert (empty.start_cursor, empty.end_cursor, empty.items) == (None, None, [])


def test_scopes_and_sorts_do_not_mix() -> None:
    review = encode_cursor("reviews", REVIEW_SORTS["-created_at"], (datetime(2026, 1, 1), 1))
    category = encode_cursor("categories", CATEGORY_SORTS["name"], ("Books", 1))
    with pytest.raises(Invalid):
        decode_cursor("products", PRODUCT_SORTS["-created_at"], review)
    with pytest.raises(Invalid):
        decode_cursor("products", PRODUCT_SORTS["name"], category)


# -- whole walks -------------------------------------------------------------------------


async def walk_rest(gateway: Gateway, sort: str, *, via_link: bool, size: int = PAGE) -> list[int]:
    seen: list[int] = []
    url: str | None = f"/api/v1/products?sort={sort}&limit={size}"
    while url is not None:
        response = await gateway.client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [p["id"] for p in body["data"]]
        link = response.headers.get("link")
        assert (link is None) == (body["next_cursor"] is None)
        if body["next_cursor"] is None:
            break
        assert len(body["data"]) == size
        match = LINK.match(link or "")
        assert match, link
        if via_link:
            url = match["url"]
            assert f"cursor={body['next_cursor']}" in url
            assert f"sort={sort}" in url
        else:
            url = f"/api/v1/products?sort={sort}&limit={size}&cursor={body['next_cursor']}"
    return seen


PRODUCTS_PAGE = """query($first: Int, $after: String, $last: Int, $before: String,
                        $orderBy: ProductOrder) {
  products(first: $first, after: $after, last: $last, before: $before, orderBy: $orderBy) {
    totalCount
    edges { cursor node { databaseId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


def order_by(sort: str) -> dict[str, str]:
    field, direction = ORDER_BY[sort]
    return {"field": field, "direction": direction}


async def graphql_page(gateway: Gateway, sort: str, **window: Any) -> dict[str, Any]:
    body = await gateway.graphql(PRODUCTS_PAGE, {"orderBy": order_by(sort), **window})
    assert "errors" not in body, body
    connection = body["data"]["products"]
    edges = connection["edges"]
    info = connection["pageInfo"]
    if edges:
        assert (info["startCursor"], info["endCursor"]) == (edges[0]["cursor"], edges[-1]["cursor"])
    return connection


async def walk_graphql_forward(gateway: Gateway, sort: str) -> list[int]:
    seen: list[int] = []
    after = None
    for step in count():
        connection = await graphql_page(gateway, sort, first=PAGE, after=after)
        seen += [e["node"]["databaseId"] for e in connection["edges"]]
        info = connection["pageInfo"]
        assert info["hasPreviousPage"] is (step > 0)
        if not info["hasNextPage"]:
            return seen
        after = info["endCursor"]
    raise AssertionError("unreachable")


async def walk_graphql_backward(gateway: Gateway, sort: str) -> list[int]:
    seen: list[int] = []
    before = None
    for step in count():
        connection = await graphql_page(gateway, sort, last=PAGE, before=before)
        seen = [e["node"]["databaseId"] for e in connection["edges"]] + seen
        info = connection["pageInfo"]
        assert info["hasNextPage"] is (step > 0)
        if not info["hasPreviousPage"]:
            return seen
        before = info["startCursor"]
    raise AssertionError("unreachable")


@pytest.mark.parametrize("sort", SORTS)
async def test_every_walk_sees_the_whole_list_once(gateway: Gateway, sort: str) -> None:
    expected = (await load_catalog(gateway)).active_ids(sort)
    assert len(expected) % PAGE != 0
    walks = {
        "rest_next_cursor": await walk_rest(gateway, sort, via_link=False),
        "rest_link_header": await walk_rest(gateway, sort, via_link=True),
        "graphql_forward": await walk_graphql_forward(gateway, sort),
        "graphql_backward": await walk_graphql_backward(gateway, sort),
    }
    assert walks == dict.fromkeys(walks, expected)
    big = await graphql_page(gateway, sort, first=100)
    assert [e["node"]["databaseId"] for e in big["edges"]] == expected
    assert big["totalCount"] == len(expected)


async def test_a_full_last_page_has_no_next_cursor(gateway: Gateway) -> None:
    expected = (await load_catalog(gateway)).active_ids("price")
    size = next(n for n in range(2, 50) if len(expected) % n == 0)
    assert await walk_rest(gateway, "price", via_link=False, size=size) == expected
    assert await walk_rest(gateway, "price", via_link=True, size=size) == expected


async def test_link_header_keeps_the_filters(gateway: Gateway) -> None:
    catalog = await load_catalog(gateway)
    filters = {"category": catalog.categories[0].slug, "in_stock": "true", "max_price": 40_000}
    expected = catalog.active_ids(
        "-price", category=filters["category"], in_stock=True, max_price=40_000
    )
    assert len(expected) > 4
    seen: list[int] = []
    url: str | None = "/api/v2/products"
    params: dict[str, Any] | None = {**filters, "sort": "-price", "limit": 2}
    while url is not None:
        response = await gateway.client.get(url, params=params)
        seen += [p["id"] for p in response.json()["data"]]
        match = LINK.match(response.headers.get("link", ""))
        url, params = (match["url"], None) if match else (None, None)
    assert seen == expected


async def test_edge_cursors_resume_after_their_own_row(gateway: Gateway) -> None:
    expected = (await load_catalog(gateway)).active_ids("name")
    page = await graphql_page(gateway, "name", first=5)
    middle = page["edges"][2]["cursor"]
    after = await graphql_page(gateway, "name", first=4, after=middle)
    before = await graphql_page(gateway, "name", last=2, before=middle)
    assert [e["node"]["databaseId"] for e in after["edges"]] == expected[3:7]
    assert [e["node"]["databaseId"] for e in before["edges"]] == expected[0:2]


# -- inserts while paging ------------------------------------------------------------------


async def insert_products(gateway: Gateway, batch: int) -> None:
    """Rows that sort first, last and in the middle of every order."""
    async with gateway.app.state.db.write() as session:
        category_id = await session.scalar(select(Category.id).limit(1))
        session.add_all(
            [
                Product(
                    sku=f"NEW-{batch}-{tag}",
                    name=name,
                    description="",
                    price_cents=price,
                    stock=5,
                    category_id=category_id,
                    created_at=created,
                    updated_at=created,
                )
                for tag, name, price, created in (
                    ("first", f"AAA {batch}", 0, datetime(2025, 1, 1) - timedelta(days=batch)),
                    (
                        "last",
                        f"zzz {batch}",
                        10**6 + batch,
                        datetime(2027, 1, 1) + timedelta(batch),
                    ),
                    ("mid", f"Mid {batch}", 25_000, datetime(2026, 1, 2, 0, 0, batch)),
                )
            ]
        )


@pytest.mark.parametrize("interface", ["rest", "graphql"])
@pytest.mark.parametrize("sort", SORTS)
async def test_inserts_while_paging_never_repeat_or_skip(
    fresh_gateway: Gateway, sort: str, interface: str
) -> None:
    gateway = fresh_gateway
    existing = (await load_catalog(gateway)).active_ids(sort)
    seen: list[int] = []
    cursor = None
    for batch in count():
        if interface == "rest":
            params = {"sort": sort, "limit": PAGE} | ({"cursor": cursor} if cursor else {})
            body = (await gateway.client.get("/api/v1/products", params=params)).json()
            seen += [p["id"] for p in body["data"]]
            cursor = body["next_cursor"]
        else:
            connection = await graphql_page(gateway, sort, first=PAGE, after=cursor)
            seen += [e["node"]["databaseId"] for e in connection["edges"]]
            info = connection["pageInfo"]
            cursor = info["endCursor"] if info["hasNextPage"] else None
        if cursor is None:
            break
        await insert_products(gateway, batch)
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert [i for i in seen if i in set(existing)] == existing, "a row was skipped"
    assert set(seen) - set(existing), "rows inserted ahead of the walk show up in it"


# -- tampered cursors ----------------------------------------------------------------------


async def foreign_cursors(gateway: Gateway) -> dict[str, str]:
    """Real cursors of other lists and sorts."""
    catalog = await load_catalog(gateway)
    product_id = max(catalog.active_ids(), key=lambda i: len(catalog.reviews_of(i)))
    reviews = await gateway.client.get(f"/api/v1/products/{product_id}/reviews?limit=1")
    categories = await gateway.client.get("/api/v1/categories?limit=1")
    by_price = await gateway.client.get("/api/v1/products?limit=1&sort=price")
    return {
        "reviews": reviews.json()["next_cursor"],
        "categories": categories.json()["next_cursor"],
        "other_sort": by_price.json()["next_cursor"],
    }


TAMPERED = {  # name: (the sort it is used with, the cursor)
    "garbage": ("-created_at", "%%%not-a-cursor%%%"),
    "base64_junk": ("-created_at", b64(b"\x89PNG\r\n\x1a\n junk")),
    "base64_text": ("-created_at", b64(b"hello world")),
    "wrong_types": ("-created_at", raw_cursor("products", "-created_at", [123, "x"])),
    "not_a_date": ("-created_at", raw_cursor("products", "-created_at", ["tomorrow", 1])),
    "wrong_arity": ("-created_at", raw_cursor("products", "-created_at", ["2026-01-01T00:00:00"])),
    "huge_id": (
        "-created_at",
        raw_cursor("products", "-created_at", ["2026-01-01T00:00:00", 10**30]),
    ),
    "huge_price": ("price", raw_cursor("products", "price", [2**31, 1])),
    "nul_in_date": (
        "-created_at",
        raw_cursor("products", "-created_at", ["2026-01-01T00\u0000", 1]),
    ),
    "time_zone": (
        "created_at",
        raw_cursor("products", "created_at", ["2026-01-01T00:00:00+05:00", 1]),
    ),
    "nul_in_name": ("name", raw_cursor("products", "name", ["Eco\u0000", 1])),
    "lone_surrogate": ("-name", b64(b'["products","-name",["\\ud800",1]]')),
}


@pytest.mark.parametrize("name", [*TAMPERED, "reviews", "categories", "other_sort"])
async def test_tampered_cursor_is_bad_user_input(gateway: Gateway, name: str) -> None:
    sort, cursor = TAMPERED.get(name) or ("-created_at", (await foreign_cursors(gateway))[name])
    for version in ("v1", "v2"):
        response = await gateway.client.get(
            f"/api/{version}/products", params={"sort": sort, "cursor": cursor}
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "BAD_USER_INPUT"
    for window in ({"after": cursor}, {"before": cursor}, {"last": 3, "before": cursor}):
        body = await gateway.graphql(PRODUCTS_PAGE, {"orderBy": order_by(sort), **window})
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("name", ["garbage", "wrong_types", "huge_id", "nul_in_date"])
async def test_tampered_nested_and_review_cursors(gateway: Gateway, name: str) -> None:
    _, cursor = TAMPERED[name]
    catalog = await load_catalog(gateway)
    product_id = catalog.active_ids()[0]
    response = await gateway.client.get(
        f"/api/v2/products/{product_id}/reviews", params={"cursor": cursor}
    )
    assert (response.status_code, response.json()["code"]) == (400, "BAD_USER_INPUT")
    response = await gateway.client.get("/api/v1/categories", params={"cursor": cursor})
    assert (response.status_code, response.json()["code"]) == (400, "BAD_USER_INPUT")
    body = await gateway.graphql(
        """query($c: String) { categories(first: 2) { edges { node {
             products(first: 2, after: $c) { edges { node { id } } } } } } }""",
        {"c": cursor},
    )
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"BAD_USER_INPUT"}
    body = await gateway.graphql(
        """query($c: String) { products(first: 2) { edges { node {
             reviews(first: 2, after: $c) { edges { node { id } } } } } } }""",
        {"c": cursor},
    )
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
