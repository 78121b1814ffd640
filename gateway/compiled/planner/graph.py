"""The catalog's GraphQL shapes as one SQL statement that builds the response JSON.

Input is an interface-neutral selection tree (``Sel``, built by ``gateway.compiled.graphql``
from a validated document), output is SQL text whose one value is the ``data`` object.
Rows are found with the predicates of ``data.policy`` and the sorts and cursors of
``data.pagination``; anything outside what is written here raises ``Unsupported`` and
the request takes the resolver path, which stays the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from data.actor import Actor
from data.errors import Invalid
from data.inputs import storable_int, storable_text
from data.models import Product, ProductCount
from data.money import CURRENCY
from data.pagination import PageRequest, parse_sort
from data.policy import can_read_stock, product_visible, visibility_class
from data.services.categories import CATEGORY_SORTS, DEFAULT_CATEGORY_SORT
from data.services.products import PRODUCT_SORTS, ProductFilter, _escape_like
from data.services.reviews import DEFAULT_REVIEW_SORT, REVIEW_SORTS
from gateway.compiled.planner.sql import (
    Source,
    Statement,
    Unsupported,
    Window,
    cursor,
    global_id,
    iso,
    mapped,
    money_amount,
    plain,
    predicate,
    require,
)

MAX_KEYS = 50  # json_build_object takes at most 100 arguments

# ``product_visible`` as SQL by (visibility class, table, alias): every actor of one class
# (``data.policy.visibility_class``) gets the same predicate. Aliases are numbered per
# statement, so this stays small.
_VISIBLE: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True, eq=False)
class Sel:
    """One response key: the field it reads, its coerced arguments and its sub-selection."""

    key: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    children: tuple[Sel, ...] = ()


Where = Callable[[str], list[str]]


def obj(pairs: Sequence[tuple[str, str]]) -> str:
    if len(pairs) > MAX_KEYS:
        raise Unsupported("too many keys for json_build_object")
    return "json_build_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"


class Builder:
    """Builds one statement for one actor."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.st = Statement()

    # -- objects -------------------------------------------------------------------

    def visible(self, alias: str, rows: Any = Product) -> str:
        """``product_visible`` over ``products`` (or ``product_counts``) as ``alias``."""
        key = (visibility_class(self.actor), rows.__tablename__, alias)
        sql = _VISIBLE.get(key)
        if sql is None:
            sql = _VISIBLE[key] = predicate(
                product_visible(self.actor, rows), rows.__table__, alias
            )
        return sql

    def money(self, cents: str, sels: Sequence[Sel]) -> str:
        values = {
            "amount": money_amount(cents),
            "currency": f"'{CURRENCY}'",
            "__typename": "'Money'",
        }
        return obj([(s.key, self._known(values, s)) for s in sels])

    @staticmethod
    def _known(values: dict[str, str], sel: Sel) -> str:
        if sel.name not in values or sel.children or sel.args:
            raise Unsupported(sel.name)
        return values[sel.name]

    def product(self, a: str, sels: Sequence[Sel]) -> str:
        values = {
            "id": global_id("Product", f"{a}.id"),
            "databaseId": f"{a}.id",
            "sku": f"{a}.sku",
            "name": f"{a}.name",
            "description": f"{a}.description",
            "inStock": f"({a}.stock > 0)",
            "isActive": f"{a}.is_active",
            "createdAt": iso(f"{a}.created_at", aware=True),
            "updatedAt": iso(f"{a}.updated_at", aware=True),
            "__typename": "'Product'",
        }
        pairs = []
        for s in sels:
            if s.name == "price":
                pairs.append((s.key, self.money(f"{a}.price_cents", s.children)))
            elif s.name == "stock" and not s.args:
                if not can_read_stock(self.actor):
                    raise Unsupported("stock is an error for this actor")
                pairs.append((s.key, f"{a}.stock"))
            elif s.name == "category" and not s.args:
                c = self.st.alias("c")
                pairs.append(
                    (
                        s.key,
                        f"(SELECT {self.category(c, s.children)} "
                        f"FROM categories {c} WHERE {c}.id = {a}.category_id)",
                    )
                )
            elif s.name == "reviews":
                pairs.append((s.key, self.product_reviews(a, s)))
            elif s.name == "averageRating" and not s.args:
                # Reviews are visible with their product, and this product is visible here.
                r = self.st.alias("r")
                pairs.append(
                    (
                        s.key,
                        f"(SELECT avg({r}.rating) FROM reviews {r} WHERE {r}.product_id = {a}.id)",
                    )
                )
            else:
                pairs.append((s.key, self._known(values, s)))
        return obj(pairs)

    def category(self, a: str, sels: Sequence[Sel]) -> str:
        values = {
            "id": global_id("Category", f"{a}.id"),
            "databaseId": f"{a}.id",
            "slug": f"{a}.slug",
            "name": f"{a}.name",
            "createdAt": iso(f"{a}.created_at", aware=True),
            "__typename": "'Category'",
        }
        pairs = []
        for s in sels:
            if s.name == "products":
                pairs.append((s.key, self.category_products(a, s)))
            else:
                pairs.append((s.key, self._known(values, s)))
        return obj(pairs)

    def review(self, a: str, sels: Sequence[Sel]) -> str:
        values = {
            "id": global_id("Review", f"{a}.id"),
            "databaseId": f"{a}.id",
            "rating": f"{a}.rating",
            "title": f"{a}.title",
            "body": f"{a}.body",
            "createdAt": iso(f"{a}.created_at", aware=True),
            "__typename": "'Review'",
        }
        pairs = []
        for s in sels:
            if s.name == "author" and not s.args:
                u = self.st.alias("u")
                pairs.append(
                    (
                        s.key,
                        f"(SELECT {self.author(u, s.children)} "
                        f"FROM users {u} WHERE {u}.id = {a}.author_id)",
                    )
                )
            elif s.name == "product" and not s.args:
                p = self.st.alias("p")
                pairs.append(
                    (
                        s.key,
                        f"(SELECT {self.product(p, s.children)} FROM products {p} "
                        f"WHERE {p}.id = {a}.product_id AND {self.visible(p)})",
                    )
                )
            else:
                pairs.append((s.key, self._known(values, s)))
        return obj(pairs)

    def author(self, a: str, sels: Sequence[Sel]) -> str:
        # A review author is met by name only; the private fields (an error for most
        # actors) and the author's own connections take the resolver path.
        values = {
            "id": global_id("User", f"{a}.id"),
            "databaseId": f"{a}.id",
            "name": f"{a}.name",
            "__typename": "'User'",
        }
        return obj([(s.key, self._known(values, s)) for s in sels])

    # -- connections ---------------------------------------------------------------

    def page(self, table: str, window: Window, where: Where) -> tuple[str, str]:
        """``(alias, FROM item)``: the page's rows plus one, numbered ``_rn`` in fetch order.

        Aggregate over it with ``FILTER (WHERE _rn <= size)``; ``count(*) > size`` is
        "there is more", exactly as ``data.pagination`` decides it."""
        t = self.st.alias("t")
        fetch = window.fetch_order(t)
        inner = (
            f"SELECT * FROM {table} {t} WHERE "
            + " AND ".join(where(t) + window.keyset(self.st, t) or ["true"])
            + f" ORDER BY {fetch} LIMIT {window.request.size + 1}"
        )
        numbered = f"SELECT {t}.*, row_number() OVER (ORDER BY {fetch}) AS _rn FROM ({inner}) {t}"
        return t, f"({numbered}) {t}"

    def connection(
        self,
        sel: Sel,
        *,
        type_name: str,
        table: str,
        window: Window,
        where: Where,
        node: Callable[[str, Sequence[Sel]], str],
        total: Callable[[str], str] | None = None,
    ) -> str:
        """``total(alias)``, when given, is the SQL of ``totalCount`` (else a COUNT of
        ``table`` under ``where``)."""
        st, req = self.st, window.request
        t, source = self.page(table, window, where)
        size, backward = req.size, req.backward
        out = "_rn DESC" if backward else "_rn"
        rev = "_rn" if backward else "_rn DESC"
        page = f"FILTER (WHERE _rn <= {size})"
        more = f"(count(*) > {size})"
        has_next = ("true" if req.before is not None else "false") if backward else more
        has_previous = more if backward else ("true" if req.after is not None else "false")

        def cursors(order: str) -> str:
            return f"(array_agg({cursor(window.scope, window.sort, t)} ORDER BY {order}) {page})[1]"

        pairs = []
        for s in sel.children:
            if s.name == "edges":
                edge = []
                for e in s.children:
                    if e.name == "cursor":
                        edge.append((e.key, cursor(window.scope, window.sort, t)))
                    elif e.name == "node":
                        edge.append((e.key, node(t, e.children)))
                    else:
                        edge.append((e.key, self._known({"__typename": f"'{type_name}Edge'"}, e)))
                pairs.append(
                    (s.key, f"COALESCE(json_agg({obj(edge)} ORDER BY {out}) {page}, '[]'::json)")
                )
            elif s.name == "pageInfo":
                info = {
                    "hasNextPage": has_next,
                    "hasPreviousPage": has_previous,
                    "startCursor": cursors(out),
                    "endCursor": cursors(rev),
                    "__typename": "'PageInfo'",
                }
                pairs.append((s.key, obj([(i.key, self._known(info, i)) for i in s.children])))
            elif s.name == "totalCount":
                c = st.alias("n")
                pairs.append(
                    (
                        s.key,
                        total(c)
                        if total
                        else (
                            f"(SELECT count(*) FROM {table} {c} WHERE "
                            + " AND ".join(where(c) or ["true"])
                            + ")"
                        ),
                    )
                )
            else:
                pairs.append((s.key, self._known({"__typename": f"'{type_name}Connection'"}, s)))
        # GROUP BY (): one row even when no aggregate was selected (only totalCount).
        return f"(SELECT {obj(pairs)} FROM {source} GROUP BY ())"

    def product_filters(self, where: ProductFilter) -> Callable[..., list[str]]:
        """The filter's predicates over ``products``, or with ``groups=True`` over
        ``product_counts`` (only for a filter ``counted_by_group``); its values may be bound
        (each source checks its value as ``ProductFilter.validate`` would, and ``q`` that it
        is still not empty)."""
        try:
            ProductFilter(
                category=plain(where.category),
                q=plain(where.q),
                min_price=plain(where.min_price),
                max_price=plain(where.max_price),
                in_stock=where.in_stock,
            ).validate()
        except Invalid as exc:
            raise Unsupported("invalid filter") from exc
        st = self.st

        def valid(name: str, value: Any, sql_type: str) -> str | None:
            if plain(value) is None:
                return None
            return st.param(mapped(value, lambda v: _valid_filter(name, v)), sql_type)

        category = valid("category", where.category, "text")
        like = None
        if plain(where.q):
            like = st.param(
                mapped(
                    mapped(where.q, require(bool)),
                    lambda q: f"%{_escape_like(_valid_filter('q', q))}%",
                ),
                "text",
            )
        low = valid("min_price", where.min_price, "int")
        high = valid("max_price", where.max_price, "int")

        def build(t: str, groups: bool = False) -> list[str]:
            found = [self.visible(t, ProductCount if groups else Product)]
            if category is not None:
                found.append(
                    f"{t}.category_id IN (SELECT id FROM categories WHERE slug = {category})"
                )
            if groups:
                if where.in_stock is not None:
                    found.append(f"{t}.in_stock" if where.in_stock else f"NOT {t}.in_stock")
                return found
            if like is not None:
                found.append(f"{t}.name ILIKE {like} ESCAPE '\\'")
            if low is not None:
                found.append(f"{t}.price_cents >= {low}")
            if high is not None:
                found.append(f"{t}.price_cents <= {high}")
            if where.in_stock is not None:
                found.append(f"{t}.stock > 0" if where.in_stock else f"{t}.stock = 0")
            return found

        return build

    def products(self, sel: Sel, parent: str | None = None) -> str:
        args = sel.args
        try:
            sort = parse_sort(PRODUCT_SORTS, args["sort"])
        except Invalid as exc:
            raise Unsupported("sort") from exc
        window = Window.of("products", sort, args["page"])
        given = args["where"]
        filters = self.product_filters(given)

        def where(t: str, groups: bool = False) -> list[str]:
            own = [f"{t}.category_id = {parent}.id"] if parent else []
            return own + filters(t, groups=groups)

        def group_total(c: str) -> str:
            return (
                f"(SELECT COALESCE(sum({c}.total), 0) FROM product_counts {c} WHERE "
                + " AND ".join(where(c, groups=True))
                + ")"
            )

        # Whether a value is there (and ``q`` not empty) is part of the plan's key.
        counted = ProductFilter(
            q=plain(given.q), min_price=plain(given.min_price), max_price=plain(given.max_price)
        ).counted_by_group
        return self.connection(
            sel,
            type_name="Product",
            table="products",
            window=window,
            where=where,
            node=self.product,
            total=group_total if counted else None,
        )

    def category_products(self, a: str, sel: Sel) -> str:
        return self.products(sel, parent=a)

    def product_reviews(self, a: str, sel: Sel) -> str:
        window = Window.of("reviews", REVIEW_SORTS[DEFAULT_REVIEW_SORT], sel.args["page"])
        return self.connection(
            sel,
            type_name="Review",
            table="reviews",
            window=window,
            where=lambda t: [f"{t}.product_id = {a}.id"],
            node=self.review,
        )

    def categories(self, sel: Sel) -> str:
        window = Window.of("categories", CATEGORY_SORTS[DEFAULT_CATEGORY_SORT], sel.args["page"])
        return self.connection(
            sel,
            type_name="Category",
            table="categories",
            window=window,
            where=lambda t: [],
            node=self.category,
        )

    # -- single objects ------------------------------------------------------------

    def one(self, type_name: str, database_id: Any, sels: Sequence[Sel], sku: Any = None) -> str:
        """The object of this type and id as this actor may see it, or null."""
        a = self.st.alias("o")
        if sku is not None:
            if not storable_text(plain(sku)):
                return "NULL::json"
            match = f"{a}.sku = {self.st.param(mapped(sku, require(storable_text)), 'text')}"
        else:
            if not storable_int(plain(database_id)):
                return "NULL::json"
            bound_id = mapped(database_id, require(storable_int))
            match = f"{a}.id = {self.st.param(bound_id, 'int')}"
        if type_name == "Product":
            return (
                f"(SELECT {self.product(a, sels)} FROM products {a} WHERE {match} "
                f"AND {self.visible(a)})"
            )
        if type_name == "Category":
            return f"(SELECT {self.category(a, sels)} FROM categories {a} WHERE {match})"
        if type_name == "Review":
            p = self.st.alias("p")
            return (
                f"(SELECT {self.review(a, sels)} FROM reviews {a} WHERE {match} AND "
                f"{a}.product_id IN (SELECT {p}.id FROM products {p} "
                f"WHERE {self.visible(p)}))"
            )
        raise Unsupported(type_name)

    def category_by_slug(self, slug: Any, sels: Sequence[Sel]) -> str:
        if not storable_text(plain(slug)):
            raise Unsupported("not found")
        a = self.st.alias("o")
        match = self.st.param(mapped(slug, require(storable_text)), "text")
        return f"(SELECT {self.category(a, sels)} FROM categories {a} WHERE {a}.slug = {match})"


NODE_TYPES = ("Product", "Category", "Review")


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    params: tuple[Any, ...]
    required: tuple[str, ...]  # root keys whose null means "not found": the resolver path says so
    # Where each parameter comes from in a request of the same shape (``sql.bind``).
    sources: tuple[Source | None, ...] = ()


def _valid_filter(name: str, value: Any) -> Any:
    """``value``, if ``ProductFilter.validate`` takes it for ``name`` (else ``Invalid``)."""
    ProductFilter(**{name: value}).validate()
    return value


def actor_key(actor: Actor) -> tuple[str, bool]:
    """Everything a compiled statement depends on about the actor: statements may be
    cached and shared under this key."""
    return visibility_class(actor), can_read_stock(actor)


def compile_query(actor: Actor, root: Sequence[Sel]) -> CompiledQuery:
    """One statement for a whole catalog query, or ``Unsupported``."""
    b = Builder(actor)
    pairs, required = [], []
    for s in root:
        a = s.args
        if s.name == "products":
            pairs.append((s.key, b.products(s)))
        elif s.name == "categories":
            pairs.append((s.key, b.categories(s)))
        elif s.name == "product":
            pairs.append((s.key, b.one("Product", a.get("id"), s.children, sku=a.get("sku"))))
            required.append(s.key)
        elif s.name == "category":
            pairs.append((s.key, b.category_by_slug(a["slug"], s.children)))
            required.append(s.key)
        elif s.name == "node":
            pairs.append((s.key, b.one(a["type"], a["id"], s.children)))
            required.append(s.key)
        elif s.name == "nodes":
            # An unknown type is null there (``node`` says NOT_FOUND: that is required).
            items = [
                b.one(n.args["type"], n.args["id"], n.children)
                if n.args["type"] in NODE_TYPES
                else "NULL::json"
                for n in s.children
            ]
            pairs.append(
                (s.key, "json_build_array(" + ", ".join(items) + ")" if items else "'[]'::json")
            )
        elif s.name == "__typename":
            pairs.append((s.key, "'Query'"))
        else:
            raise Unsupported(s.name)
    return CompiledQuery(
        f"SELECT {obj(pairs)}::text", tuple(b.st.params), tuple(required), tuple(b.st.sources)
    )


def page_request(args: dict[str, Any]) -> PageRequest:
    return PageRequest(args.get("first"), args.get("after"), args.get("last"), args.get("before"))
