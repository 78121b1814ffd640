"""A generated corpus of catalog GraphQL documents for the differential test.

Deterministic (seeded), built from real cursors and ids of the database under test, and
varied on purpose: field subsets in random order, aliases, named and inline fragments,
``@include``/``@skip`` with variables, nested connections with ``first``/``after``/
``last``/``before``, filters and sorts, not-found ids, bad cursors, ``stock`` (a field
rule that is an error for most principals) and fields the compiler does not know.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Any

PRODUCT_SCALARS = (
    "id",
    "databaseId",
    "sku",
    "name",
    "description",
    "inStock",
    "isActive",
    "createdAt",
    "updatedAt",
    "averageRating",
    "__typename",
)
CATEGORY_SCALARS = ("id", "databaseId", "slug", "name", "createdAt", "__typename")
REVIEW_SCALARS = ("id", "databaseId", "rating", "title", "body", "createdAt", "__typename")
AUTHOR_FIELDS = ("id", "databaseId", "name", "__typename")
SORT_FIELDS = ("CREATED_AT", "PRICE", "NAME")
BAD_CURSORS = (
    "not-a-cursor",
    base64.urlsafe_b64encode(b'["reviews","-created_at",[1]]').decode().rstrip("="),
    "",
)


@dataclass
class Facts:
    """What the generator draws from: real rows and cursors of the seeded database."""

    product_ids: list[int]
    inactive_product: int
    skus: list[str]
    slugs: list[str]
    review_ids: list[int]
    product_cursors: dict[str, list[str]]  # by sort name
    category_cursors: list[str]
    review_cursors: list[str]


@dataclass
class Doc:
    query: str
    variables: dict[str, Any] = field(default_factory=dict)


def gid(type_name: str, database_id: int) -> str:
    return base64.b64encode(f"{type_name}:{database_id}".encode()).decode()


class Generator:
    def __init__(self, facts: Facts, seed: int) -> None:
        self.f = facts
        self.r = random.Random(seed)
        self.fragments: dict[str, str] = {}
        self.var_defs: dict[str, str] = {}
        self.variables: dict[str, Any] = {}
        self.aliases = 0
        self.root_alias: str | None = None

    # -- small pieces ----------------------------------------------------------------

    def key(self, name: str) -> str:
        if self.r.random() < 0.2:
            self.aliases += 1
            return f"a{self.aliases}: {name}"
        return name

    def var(self, type_name: str, value: Any) -> str:
        name = f"v{len(self.var_defs)}"
        self.var_defs[name] = type_name
        self.variables[name] = value
        return f"${name}"

    def conditional(self, body: str) -> str:
        roll = self.r.random()
        if roll < 0.06:
            return f"... @include(if: {self.var('Boolean!', self.r.random() < 0.5)}) {{ {body} }}"
        if roll < 0.12:
            return f"{body} @skip(if: {self.var('Boolean!', self.r.random() < 0.5)})"
        return body

    def pick(self, names: tuple[str, ...], low: int = 1) -> list[str]:
        chosen = self.r.sample(names, self.r.randint(low, len(names)))
        return [self.conditional(self.key(n)) for n in chosen]

    def int_arg(self, name: str, value: int) -> str:
        return f"{name}: {self.var('Int', value) if self.r.random() < 0.3 else value}"

    def str_arg(self, name: str, value: str, type_name: str = "String") -> str:
        literal = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name}: {self.var(type_name, value) if self.r.random() < 0.3 else literal}"

    # -- objects ----------------------------------------------------------------------

    def money(self) -> str:
        return "{ " + " ".join(self.pick(("amount", "currency", "__typename"))) + " }"

    def product(self, depth: int) -> str:
        parts = self.pick(PRODUCT_SCALARS)
        r = self.r
        if r.random() < 0.6:
            parts.append(f"{self.key('price')} {self.money()}")
        if r.random() < 0.08:
            parts.append("stock")
        if r.random() < 0.5:
            parts.append(f"{self.key('category')} {self.category(depth + 1)}")
        if depth < 2 and r.random() < 0.5:
            parts.append(
                f"{self.key('reviews')}{self.review_args()} "
                f"{self.connection(lambda: self.review(depth + 1))}"
            )
        if r.random() < 0.15:
            self.fragments.setdefault(
                "ProductBits", "fragment ProductBits on Product { id name price { amount } }"
            )
            parts.append("...ProductBits")
        if r.random() < 0.1:
            parts.append("... on Product { sku databaseId }")
        if r.random() < 0.1:
            parts.append("... on Node { id }")
        if r.random() < 0.01:
            parts.append("unknownField")  # invalid: both paths must refuse it alike
        r.shuffle(parts)
        return "{ " + " ".join(parts) + " }"

    def category(self, depth: int) -> str:
        parts = self.pick(CATEGORY_SCALARS)
        if depth < 2 and self.r.random() < 0.3:
            parts.append(
                f"{self.key('products')}{self.product_args(invalid=False)} "
                f"{self.connection(lambda: self.product(depth + 1))}"
            )
        self.r.shuffle(parts)
        return "{ " + " ".join(parts) + " }"

    def review(self, depth: int) -> str:
        parts = self.pick(REVIEW_SCALARS)
        if self.r.random() < 0.6:
            parts.append(f"{self.key('author')} {{ {' '.join(self.pick(AUTHOR_FIELDS))} }}")
        if self.r.random() < 0.02:
            parts.append("author { email }")  # a private field: an error for most
        if depth < 2 and self.r.random() < 0.2:
            parts.append(f"{self.key('product')} {self.product(depth + 1)}")
        self.r.shuffle(parts)
        return "{ " + " ".join(parts) + " }"

    def connection(self, node: Any) -> str:
        parts = []
        r = self.r
        if r.random() < 0.5:
            parts.append(self.key("totalCount"))
        if r.random() < 0.5:
            info = self.pick(
                ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor", "__typename")
            )
            parts.append(f"{self.key('pageInfo')} {{ {' '.join(info)} }}")
        if r.random() < 0.9 or not parts:
            edge = []
            if r.random() < 0.5:
                edge.append(self.key("cursor"))
            if r.random() < 0.1:
                edge.append("__typename")
            edge.append(f"{self.key('node')} {node()}")
            r.shuffle(edge)
            parts.append(f"{self.key('edges')} {{ {' '.join(edge)} }}")
        if r.random() < 0.1:
            parts.append("__typename")
        r.shuffle(parts)
        return "{ " + " ".join(parts) + " }"

    # -- arguments --------------------------------------------------------------------

    def page_args(
        self, cursors: list[str], *, backward: bool = True, invalid: bool = True
    ) -> list[str]:
        """Page arguments; ``invalid`` ones only where the resolver path answers them
        deterministically (root fields: a nested connection's loader batches siblings, so
        one bad argument fails whichever siblings share its batch)."""
        r = self.r
        args = []
        roll = r.random()
        size = r.choice((1, 2, 3, 5, 10, 20))
        if invalid and roll < 0.01:
            size = r.choice((0, 101, -1))  # out of range: Invalid on both paths
        if not backward or roll < 0.6:
            if r.random() < 0.8:
                args.append(self.int_arg("first", size))
            if r.random() < 0.35 and cursors:
                args.append(self.str_arg("after", r.choice(cursors)))
        else:
            args.append(self.int_arg("last", size))
            if r.random() < 0.5 and cursors:
                args.append(self.str_arg("before", r.choice(cursors)))
        if invalid and r.random() < 0.015:
            args.append(self.str_arg("after", r.choice(BAD_CURSORS)))
        if invalid and backward and r.random() < 0.015:
            args.append(self.int_arg("last", 2))  # with first: Invalid
        # One argument given twice is a validation error: keep the first of each name.
        unique: dict[str, str] = {}
        for arg in args:
            unique.setdefault(arg.split(":")[0], arg)
        return list(unique.values())

    def review_args(self) -> str:
        args = self.page_args(self.f.review_cursors, backward=False, invalid=False)
        return f"({', '.join(args)})" if args else ""

    def product_args(self, invalid: bool = True) -> str:
        r = self.r
        sort = r.choice(SORT_FIELDS)
        direction = r.choice(("ASC", "DESC"))
        ordered = r.random() < 0.5
        sort_name = (
            ("-" if direction == "DESC" else "") + sort.lower() if ordered else "-created_at"
        )
        cursors = self.f.product_cursors.get(sort_name, [])
        if invalid and r.random() < 0.04:
            cursors = self.f.category_cursors  # a cursor of another list: Invalid
        args = self.page_args(cursors, invalid=invalid)
        if ordered:
            order = {"field": sort, "direction": direction}
            args.append(
                f"orderBy: {self.var('ProductOrder', order)}"
                if r.random() < 0.3
                else f"orderBy: {{field: {sort}, direction: {direction}}}"
            )
        filters = []
        if r.random() < 0.15:
            filters.append(f'category: "{r.choice(self.f.slugs + ["no-such-slug"])}"')
        if r.random() < 0.15:
            filters.append(f'q: "{r.choice(("lamp", "SMART", "1", "%", "_x", "zz"))}"')
        if r.random() < 0.15:
            filters.append(f"minPrice: {r.choice((0, 1000, 20000, -5) if invalid else (0, 1000))}")
        if r.random() < 0.15:
            filters.append(f"maxPrice: {r.choice((500, 30000, 2_000_000_000))}")
        if r.random() < 0.15:
            filters.append(f"inStock: {r.choice(('true', 'false'))}")
        if filters:
            if r.random() < 0.3:
                args.append(f"filter: {self.var('ProductFilterInput', _filter_value(filters))}")
            else:
                args.append(f"filter: {{{', '.join(filters)}}}")
        return f"({', '.join(args)})" if args else ""

    # -- documents --------------------------------------------------------------------

    def rkey(self, name: str) -> str:
        return f"{self.root_alias}: {name}" if self.root_alias else self.key(name)

    def root(self) -> str:
        r, f = self.r, self.f
        kind = r.choices(
            ("products", "product", "categories", "category", "node", "nodes"),
            weights=(5, 3, 2, 2, 2, 1),
        )[0]
        if kind == "products":
            return (
                f"{self.rkey('products')}{self.product_args()} "
                f"{self.connection(lambda: self.product(0))}"
            )
        if kind == "categories":
            args = self.page_args(f.category_cursors)
            head = f"({', '.join(args)})" if args else ""
            return f"{self.rkey('categories')}{head} {self.connection(lambda: self.category(0))}"
        if kind == "category":
            slug = r.choice(f.slugs * 3 + ["no-such-slug"])
            return f"{self.rkey('category')}({self.str_arg('slug', slug)}) {self.category(0)}"
        if kind == "product":
            pid = r.choice(f.product_ids * 3 + [f.inactive_product, 10**9])
            how = r.random()
            if how < 0.4:
                arg = self.str_arg("id", gid("Product", pid), "ID")
            elif how < 0.6:
                arg = self.str_arg("id", str(pid), "ID")
            elif how < 0.9:
                arg = self.str_arg("sku", r.choice(f.skus * 3 + ["SKU-NOPE"]))
            else:
                arg = self.str_arg("id", r.choice(("garbage", gid("Category", 1))), "ID")
            return f"{self.rkey('product')}({arg}) {self.product(0)}"
        ids = [self.node_id() for _ in range(1 if kind == "node" else r.randint(0, 4))]
        body = self.node_selection()
        if kind == "node":
            return f"{self.rkey('node')}({self.str_arg('id', ids[0], 'ID!')}) {body}"
        return f"{self.rkey('nodes')}(ids: {self.var('[ID!]!', ids)}) {body}"

    def node_id(self) -> str:
        r, f = self.r, self.f
        type_name = r.choices(
            ("Product", "Category", "Review", "Nope", "User"), weights=(5, 3, 3, 1, 1)
        )[0]
        pool = {
            "Product": f.product_ids + [f.inactive_product],
            "Review": f.review_ids,
            "Category": [1, 2, 3],
        }.get(type_name, [1])
        return gid(type_name, r.choice(pool + [10**6]))

    def node_selection(self) -> str:
        parts = self.pick(("id", "databaseId", "__typename"))
        parts.append(f"... on Product {self.product(1)}")
        if self.r.random() < 0.6:
            parts.append(f"... on Category {self.category(1)}")
        if self.r.random() < 0.6:
            parts.append(f"... on Review {self.review(1)}")
        self.r.shuffle(parts)
        return "{ " + " ".join(parts) + " }"

    def document(self) -> Doc:
        self.fragments, self.var_defs, self.variables, self.aliases = {}, {}, {}, 0
        count = self.r.choices((1, 2, 3), weights=(6, 3, 1))[0]
        # Later roots get their own response key: two same-named fields with different
        # arguments would be a validation error, not a test of the compiler.
        roots = []
        for i in range(count):
            self.root_alias = f"r{i}" if i else None
            roots.append(self.root())
        defs = ", ".join(f"${k}: {v}" for k, v in self.var_defs.items())
        head = f"query Q({defs}) " if defs else "query Q "
        query = head + "{ " + " ".join(roots) + " }"
        for text in self.fragments.values():
            query += "\n" + text
        return Doc(query, dict(self.variables))


def _filter_value(filters: list[str]) -> dict[str, Any]:
    names = {
        "category": "category",
        "q": "q",
        "minPrice": "minPrice",
        "maxPrice": "maxPrice",
        "inStock": "inStock",
    }
    value: dict[str, Any] = {}
    for item in filters:
        name, _, raw = item.partition(": ")
        raw = raw.strip()
        value[names[name]] = (
            raw.strip('"')
            if raw.startswith('"')
            else raw == "true"
            if raw in ("true", "false")
            else int(raw)
        )
    return value


def generate(facts: Facts, count: int, seed: int = 9) -> list[Doc]:
    generator = Generator(facts, seed)
    return [generator.document() for _ in range(count)]


@dataclass
class RestCall:
    path: str
    params: dict[str, str] = field(default_factory=dict)


def rest_calls(facts: Facts, count: int, seed: int = 11) -> list[RestCall]:
    """REST catalog requests: lists with filters, sorts, limits, real and bad cursors and
    sparse fieldsets, single objects that exist, are hidden, or never existed."""
    r = random.Random(seed)
    sorts = ("created_at", "-created_at", "price", "-price", "name", "-name")
    fields = (
        "id",
        "sku",
        "name",
        "description",
        "price",
        "stock",
        "in_stock",
        "category",
        "is_active",
        "created_at",
        "updated_at",
    )
    calls = []
    for _ in range(count):
        version = r.choice(("v1", "v2"))
        kind = r.choices(
            ("products", "product", "categories", "category", "reviews"), weights=(6, 3, 1, 1, 2)
        )[0]
        params: dict[str, str] = {}
        if r.random() < 0.6:
            params["limit"] = str(
                r.choice((1, 2, 3, 5, 20, 100) if r.random() < 0.97 else (0, 101, -3))
            )
        if kind == "products":
            sort = r.choice(sorts) if r.random() < 0.6 else None
            if sort:
                params["sort"] = sort
            if r.random() < 0.3:
                pool = facts.product_cursors.get(sort or "-created_at", [])
                params["cursor"] = r.choice(
                    pool if pool and r.random() < 0.9 else list(BAD_CURSORS[:2])
                )
            for name, values in (
                ("category", facts.slugs + ["no-such-slug"]),
                ("q", ["lamp", "SMART", "%", "_", "zz"]),
                ("min_price", ["0", "1000", "20000"]),
                ("max_price", ["500", "30000"]),
                ("in_stock", ["true", "false"]),
            ):
                if r.random() < 0.12:
                    params[name] = r.choice(values)
            if r.random() < 0.01:
                params["sort"] = "sideways"
            path = "/products"
        elif kind == "product":
            pid = r.choice(facts.product_ids * 3 + [facts.inactive_product, 10**6, 10**12])
            path = f"/products/{pid}"
        elif kind == "categories":
            if r.random() < 0.4:
                params["cursor"] = r.choice(facts.category_cursors)
            path = "/categories"
        elif kind == "category":
            path = f"/categories/{r.choice(facts.slugs + ['no-such-slug'])}"
        else:
            pid = r.choice(facts.product_ids + [facts.inactive_product, 10**6])
            if r.random() < 0.3:
                params["cursor"] = r.choice(facts.review_cursors)
            path = f"/products/{pid}/reviews"
        if r.random() < 0.35:
            chosen = r.sample(fields, r.randint(1, 5))
            if kind in ("categories", "category"):
                chosen = r.sample(("id", "slug", "name", "created_at"), r.randint(1, 3))
            if kind == "reviews":
                chosen = r.sample(
                    (
                        "id",
                        "product",
                        "author",
                        "author_name",
                        "rating",
                        "title",
                        "body",
                        "created_at",
                    ),
                    r.randint(1, 4),
                )
            if r.random() < 0.05:
                chosen.append("bogus")
            params["fields"] = ",".join(chosen)
        calls.append(RestCall(f"/api/{version}{path}", params))
    return calls
