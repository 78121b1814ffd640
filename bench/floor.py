"""The floor: the same pages, hand-written, one SQL statement each (asyncpg, orjson).

A bare ASGI app under uvicorn. PostgreSQL builds each whole JSON body (the GraphQL
pages in their ``{"data": ...}`` shape, the REST bodies as v1/v2 show them, anonymous
visibility: active products only); Python only routes, runs the statement and sends
the bytes. It is what a server that does no work of its own would reach on this
machine: the bench reports every gateway number as a ratio to it.

One statement means one: asyncpg's pool would reset each connection as it comes back
(``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, a second round
trip per request); the floor changes no session state, so its pool resets nothing.

Routes: ``POST /graphql/catalog`` (``variables``: ``orderBy``, ``after``,
``filter.minPrice``; ``/graphql/catalog-count`` with ``totalCount``),
``POST /graphql/product`` (``variables.id`` is the product's database id),
``POST /graphql/category`` (``variables``: ``slug``, ``after``;
``/graphql/category-count`` with ``totalCount``), ``GET /api/v2/products``
(``sort``, ``cursor``, ``min_price``, ``category``, ``limit``), ``GET /api/v1/products/{id}``,
``GET /health/live``. Cursors are the gateway's (the bench hands both the same
arguments); a list's statement text is made once per sort and set of filters, its values
bound, as a hand-written server would.
"""

from __future__ import annotations

import base64
import functools
import os
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson

GID = "translate(encode(convert_to({type} || ':' || {id}, 'UTF8'), 'base64'), E'\\n', '')"
CURSOR = (
    "rtrim(translate(encode(convert_to(json_build_array({scope}, '-created_at', "
    "json_build_array({row}.created_at, {row}.id))::text, 'UTF8'), 'base64'), "
    "E'+/\\n', '-_'), '=')"
)
MONEY = "json_build_object('amount', to_char({cents} / 100.0, 'FM999999990.00'), 'currency', 'USD')"

REVIEW_EDGES = f"""
  SELECT json_build_object('edges', coalesce(json_agg(json_build_object(
      'cursor', {CURSOR.format(scope="'reviews:' || r.product_id", row="r")},
      'node', json_build_object(
        'id', {GID.format(type="'Review'", id="r.id")}, 'rating', r.rating,
        'title', r.title, {{body}}
        'author', json_build_object('id', {GID.format(type="'User'", id="u.id")},
                                    'name', u.name)))
      ORDER BY r.created_at DESC, r.id DESC), '[]'::json) {{extra}})
  FROM (SELECT * FROM reviews WHERE product_id = p.id
        ORDER BY created_at DESC, id DESC LIMIT {{limit}}) r
  JOIN users u ON u.id = r.author_id
"""

PRODUCT_NODE = f"""json_build_object(
  'id', {GID.format(type="'Product'", id="p.id")}, 'databaseId', p.id, 'sku', p.sku,
  'name', p.name, {{description}} 'price', {MONEY.format(cents="p.price_cents")},
  'inStock', p.stock > 0,
  'averageRating', (SELECT avg(rating)::float8 FROM reviews WHERE product_id = p.id),
  'category', (SELECT json_build_object('id', {GID.format(type="'Category'", id="c.id")},
                                         'name', c.name, 'slug', c.slug)
               FROM categories c WHERE c.id = p.category_id),
  'reviews', ({{reviews}}))"""

PRODUCT = f"""
SELECT json_build_object('data', json_build_object('product', (
  SELECT {
    PRODUCT_NODE.format(
        description="'description', p.description, 'createdAt', p.created_at,",
        reviews=REVIEW_EDGES.format(
            body="'body', r.body, 'createdAt', r.created_at,",
            extra=", 'totalCount', (SELECT count(*) FROM reviews WHERE product_id = p.id)",
            limit=10,
        ),
    )
}
  FROM products p WHERE p.id = $1 AND p.is_active)))::text
"""

REST_FIELDS = """'id', p.id, 'sku', p.sku, 'name', p.name, 'description', p.description, {money}
  'in_stock', p.stock > 0, 'category', p.category_id, 'is_active', p.is_active,
  'created_at', p.created_at, 'updated_at', p.updated_at"""

REST_DETAIL = f"""
SELECT json_build_object({
    REST_FIELDS.format(money="'price_cents', p.price_cents, 'currency', 'USD',")
})::text
FROM products p WHERE p.id = $1 AND p.is_active
"""

# Sort name -> (column, descending), and GraphQL's ProductOrder for each.
SORTS = {
    "-created_at": ("created_at", True),
    "created_at": ("created_at", False),
    "price": ("price_cents", False),
    "-price": ("price_cents", True),
    "name": ("name", False),
    "-name": ("name", True),
}
ORDERS = {
    (f.upper().replace("PRICE_CENTS", "PRICE"), "DESC" if d else "ASC"): name
    for name, (f, d) in SORTS.items()
}


def _list_cursor(sort: str, row: str) -> str:
    column = SORTS[sort][0]
    return (
        "rtrim(translate(encode(convert_to(json_build_array('products', "
        f"'{sort}', json_build_array({row}.{column}, {row}.id))::text, 'UTF8'), "
        "'base64'), E'+/\\n', '-_'), '=')"
    )


@functools.lru_cache(maxsize=64)
def list_sql(
    kind: str, sort: str, category: bool, low: bool, after: bool, count: bool = False
) -> str:
    """A product list page (``kind``: "graphql" or "rest"), one text per sort and set of
    filters: ``$1`` the page size, then the slug, the minimum price and the cursor;
    ``count``: with the GraphQL ``totalCount`` of the filtered list (cursor aside)."""
    column, descending = SORTS[sort]
    direction = "DESC" if descending else "ASC"
    reverse = "ASC" if descending else "DESC"
    where, n = ["is_active"], 1
    if category:
        n += 1
        where.append(f"category_id = (SELECT id FROM categories WHERE slug = ${n})")
    if low:
        n += 1
        where.append(f"price_cents >= ${n}")
    total = (
        f"'totalCount', (SELECT count(*) FROM products WHERE {' AND '.join(where)}),"
        if count
        else ""
    )
    if after:
        where.append(f"({column}, id) {'<' if descending else '>'} (${n + 1}, ${n + 2})")
    order = f"{column} {direction}, id {direction}"
    page = (
        f"WITH page AS (SELECT * FROM products WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT $1 + 1), shown AS (SELECT * FROM page ORDER BY {order} "
        f"LIMIT $1)"
    )
    last = (
        f"(SELECT {_list_cursor(sort, 'p')} FROM shown p "
        f"ORDER BY {column} {reverse}, id {reverse} LIMIT 1)"
    )
    if kind == "graphql":
        node = PRODUCT_NODE.format(
            description="", reviews=REVIEW_EDGES.format(body="", extra="", limit=3)
        )
        return f"""{page}
SELECT json_build_object('data', json_build_object('products', json_build_object({total}
  'edges', coalesce((SELECT json_agg(json_build_object(
      'cursor', {_list_cursor(sort, "p")}, 'node', {node})
    ORDER BY p.{order.replace(", id", ", p.id")}) FROM shown p), '[]'::json),
  'pageInfo', json_build_object('hasNextPage', (SELECT count(*) > $1 FROM page),
                                'endCursor', {last}))))::text"""
    fields = REST_FIELDS.format(money="'price', " + MONEY.format(cents="p.price_cents") + ",")
    return f"""{page}
SELECT json_build_object(
  'data', coalesce((SELECT json_agg(json_build_object({fields})
    ORDER BY p.{order.replace(", id", ", p.id")}) FROM shown p), '[]'::json),
  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $1 THEN {last} END)::text"""


def _cursor_values(sort: str, cursor: str) -> list[Any]:
    padded = cursor + "=" * (-len(cursor) % 4)
    _scope, _sort, values = orjson.loads(base64.urlsafe_b64decode(padded))
    if SORTS[sort][0] == "created_at":
        values[0] = datetime.fromisoformat(values[0])
    return list(values)


async def product_list(
    kind: str,
    sort: str,
    size: int,
    category: str | None,
    low: int | None,
    after: str | None,
    count: bool = False,
) -> str:
    params: list[Any] = [size]
    for value in (category, low):
        if value is not None:
            params.append(value)
    if after is not None:
        params.extend(_cursor_values(sort, after))
    sql = list_sql(kind, sort, category is not None, low is not None, after is not None, count)
    return str(await pool.fetchval(sql, *params))


CATEGORY = f"""
SELECT json_build_object('data', json_build_object('category', (
  SELECT json_build_object('id', {GID.format(type="'Category'", id="c.id")}, 'name', c.name,
    'slug', c.slug, 'products', (
      WITH page AS (SELECT * FROM products WHERE is_active AND category_id = c.id{{after}}
                    ORDER BY created_at DESC, id DESC LIMIT 21),
           shown AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT 20)
      SELECT json_build_object({{count}}'edges', coalesce((SELECT json_agg(json_build_object(
          'cursor', {CURSOR.format(scope="'products'", row="p")},
          'node', json_build_object('id', {GID.format(type="'Product'", id="p.id")},
            'databaseId', p.id, 'name', p.name, 'price', {MONEY.format(cents="p.price_cents")},
            'inStock', p.stock > 0))
        ORDER BY p.created_at DESC, p.id DESC) FROM shown p), '[]'::json),
        'pageInfo', json_build_object('hasNextPage', (SELECT count(*) > 20 FROM page),
          'endCursor', (SELECT {CURSOR.format(scope="'products'", row="p")} FROM shown p
                        ORDER BY created_at, id LIMIT 1)))))
  FROM categories c WHERE c.slug = $1)))::text
"""
_TOTAL = "'totalCount', (SELECT count(*) FROM products WHERE is_active AND category_id = c.id), "
_AFTER = " AND (created_at, id) < ($2, $3)"
# (totalCount?, after a cursor?) -> the category page's text.
CATEGORIES = {
    (count, after): CATEGORY.format(count=_TOTAL if count else "", after=_AFTER if after else "")
    for count in (False, True)
    for after in (False, True)
}

JSON = [(b"content-type", b"application/json")]
NOT_FOUND = b'{"status":404,"title":"Not Found"}'
pool: Any = None


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": body})


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset: no statement here leaves a lock, cursor, listener or setting."""


async def _lifespan(receive: Any, send: Any) -> None:
    global pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            pool = await asyncpg.create_pool(
                os.environ["BENCH_DSN"], min_size=10, max_size=10, reset=_keep_session
            )
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path: str = scope["path"]
    if path == "/health/live":
        await _answer(send, 200, b'{"status":"ok"}')
    elif path in ("/graphql/catalog", "/graphql/catalog-count"):
        variables = orjson.loads(await _read_body(receive)).get("variables") or {}
        order = variables.get("orderBy") or {"field": "CREATED_AT", "direction": "DESC"}
        low = (variables.get("filter") or {}).get("minPrice")
        body = await product_list(
            "graphql",
            ORDERS[order["field"], order["direction"]],
            20,
            None,
            low,
            variables.get("after"),
            count=path.endswith("-count"),
        )
        await _answer(send, 200, body.encode())
    elif path == "/graphql/product":
        variables = orjson.loads(await _read_body(receive)).get("variables") or {}
        await _answer(send, 200, (await pool.fetchval(PRODUCT, int(variables["id"]))).encode())
    elif path in ("/graphql/category", "/graphql/category-count"):
        variables = orjson.loads(await _read_body(receive)).get("variables") or {}
        after = variables.get("after")
        sql = CATEGORIES[path.endswith("-count"), after is not None]
        params = [variables["slug"]]
        if after is not None:
            params.extend(_cursor_values("-created_at", after))
        await _answer(send, 200, (await pool.fetchval(sql, *params)).encode())
    elif path == "/api/v2/products":
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        low = query.get("min_price")
        body = await product_list(
            "rest",
            query.get("sort", "-created_at"),
            int(query.get("limit", 20)),
            query.get("category"),
            None if low is None else int(low),
            query.get("cursor"),
        )
        await _answer(send, 200, body.encode())
    elif path.startswith("/api/v1/products/") and path.rpartition("/")[2].isdigit():
        body = await pool.fetchval(REST_DETAIL, int(path.rpartition("/")[2]))
        await _answer(send, 200 if body else 404, body.encode() if body else NOT_FOUND)
    else:
        await _answer(send, 404, NOT_FOUND)
