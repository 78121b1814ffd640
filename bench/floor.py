"""The floor: the same pages, hand-written, one SQL statement each (asyncpg, orjson).

A bare ASGI app under uvicorn. PostgreSQL builds each whole JSON body (the GraphQL
pages in their ``{"data": ...}`` shape, the REST bodies as v1/v2 show them, anonymous
visibility: active products only); Python only routes, runs the statement and sends
the bytes. It is what a server that does no work of its own would reach on this
machine: the bench reports every gateway number as a ratio to it.

One statement means one: asyncpg's pool would reset each connection as it comes back
(``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``, a second round
trip per request); the floor changes no session state, so its pool resets nothing.

Routes: ``POST /graphql/catalog``, ``POST /graphql/product`` (``variables.id`` is the
product's database id), ``GET /api/v2/products``, ``GET /api/v1/products/{id}``,
``GET /health/live``.
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import orjson

GID = "translate(encode(convert_to({type} || ':' || {id}, 'UTF8'), 'base64'), E'\\n', '')"
CURSOR = ("rtrim(translate(encode(convert_to(json_build_array({scope}, '-created_at', "
          "json_build_array({row}.created_at, {row}.id))::text, 'UTF8'), 'base64'), "
          "E'+/\\n', '-_'), '=')")
MONEY = ("json_build_object('amount', to_char({cents} / 100.0, 'FM999999990.00'), "
         "'currency', 'USD')")

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

CATALOG = f"""
WITH page AS (
  SELECT * FROM products WHERE is_active ORDER BY created_at DESC, id DESC LIMIT 21
), shown AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT 20)
SELECT json_build_object('data', json_build_object('products', json_build_object(
  'edges', coalesce((SELECT json_agg(json_build_object(
      'cursor', {CURSOR.format(scope="'products'", row="p")},
      'node', {PRODUCT_NODE.format(
          description="", reviews=REVIEW_EDGES.format(body="", extra="", limit=3))})
    ORDER BY p.created_at DESC, p.id DESC) FROM shown p), '[]'::json),
  'pageInfo', json_build_object(
    'hasNextPage', (SELECT count(*) > 20 FROM page),
    'endCursor', (SELECT {CURSOR.format(scope="'products'", row="p")} FROM shown p
                  ORDER BY created_at, id LIMIT 1)))))::text
"""

PRODUCT = f"""
SELECT json_build_object('data', json_build_object('product', (
  SELECT {PRODUCT_NODE.format(
      description="'description', p.description, 'createdAt', p.created_at,",
      reviews=REVIEW_EDGES.format(
          body="'body', r.body, 'createdAt', r.created_at,",
          extra=", 'totalCount', (SELECT count(*) FROM reviews WHERE product_id = p.id)",
          limit=10))}
  FROM products p WHERE p.id = $1 AND p.is_active)))::text
"""

REST_FIELDS = """'id', p.id, 'sku', p.sku, 'name', p.name, 'description', p.description, {money}
  'in_stock', p.stock > 0, 'category', p.category_id, 'is_active', p.is_active,
  'created_at', p.created_at, 'updated_at', p.updated_at"""

REST_LIST = f"""
WITH page AS (
  SELECT * FROM products WHERE is_active ORDER BY created_at DESC, id DESC LIMIT $1 + 1
), shown AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT $1)
SELECT json_build_object(
  'data', coalesce((SELECT json_agg(json_build_object({REST_FIELDS.format(
      money="'price', " + MONEY.format(cents="p.price_cents") + ",")})
    ORDER BY p.created_at DESC, p.id DESC) FROM shown p), '[]'::json),
  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > $1 THEN
    (SELECT {CURSOR.format(scope="'products'", row="p")} FROM shown p
     ORDER BY created_at, id LIMIT 1) END)::text
"""

REST_DETAIL = f"""
SELECT json_build_object({REST_FIELDS.format(
    money="'price_cents', p.price_cents, 'currency', 'USD',")})::text
FROM products p WHERE p.id = $1 AND p.is_active
"""

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
            pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=10, max_size=10,
                                             reset=_keep_session)
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
    elif path == "/graphql/catalog":
        await _read_body(receive)
        await _answer(send, 200, (await pool.fetchval(CATALOG)).encode())
    elif path == "/graphql/product":
        variables = orjson.loads(await _read_body(receive)).get("variables") or {}
        await _answer(send, 200, (await pool.fetchval(PRODUCT, int(variables["id"]))).encode())
    elif path == "/api/v2/products":
        await _answer(send, 200, (await pool.fetchval(REST_LIST, 20)).encode())
    elif path.startswith("/api/v1/products/") and path.rpartition("/")[2].isdigit():
        body = await pool.fetchval(REST_DETAIL, int(path.rpartition("/")[2]))
        await _answer(send, 200 if body else 404, body.encode() if body else NOT_FOUND)
    else:
        await _answer(send, 404, NOT_FOUND)
