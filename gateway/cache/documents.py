"""Which GraphQL documents the response cache may share, decided once per document text.

A query is shareable when every root field is a catalog read and every field it selects,
through any fragment, is on the allow-list below: what it answers then depends only on
the caller's visibility class. The list names what is public rather than what is private,
so a field added later (on any type) bypasses the cache until someone adds it here.
``node``/``nodes`` are left out: they reach orders and users by id.

The same walk tells what the answer depends on (``Shareable.products``): a document
whose every root field is ``product(id: …)`` and that reaches no list beyond those
products' own reviews depends on those products alone; any other on every product
(``data.changes`` has the tag vocabulary). It also notes whether ``stock`` is read.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from cachetools import LRUCache
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    parse,
    print_ast,
)

CONNECTION = frozenset({"edges", "pageInfo", "totalCount"})
EDGE = frozenset({"cursor", "node"})
CATALOG_ROOTS = frozenset({"products", "product", "categories", "category"})
PUBLIC_FIELDS: dict[str, frozenset[str]] = {
    "Query": CATALOG_ROOTS,
    "Product": frozenset(
        {
            "id",
            "databaseId",
            "sku",
            "name",
            "description",
            "price",
            "inStock",
            "isActive",
            "createdAt",
            "updatedAt",
            "stock",
            "category",
            "reviews",
            "averageRating",
        }
    ),
    "Category": frozenset({"id", "databaseId", "slug", "name", "createdAt", "products"}),
    "Review": frozenset(
        {"id", "databaseId", "rating", "title", "body", "createdAt", "author", "product"}
    ),
    # Other users appear only as review authors, by name (email, role, orders: private).
    "User": frozenset({"id", "databaseId", "name", "reviews"}),
    "Money": frozenset({"amount", "currency"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    "ProductConnection": CONNECTION,
    "ProductEdge": EDGE,
    "CategoryConnection": CONNECTION,
    "CategoryEdge": EDGE,
    "ReviewConnection": CONNECTION,
    "ReviewEdge": EDGE,
}
# Fields that can show products other than the ones a ``product(id:)`` root names.
REACHES_OTHERS = frozenset({("Category", "products"), ("User", "reviews")})
MAX_TOKENS = 5_000
MAX_NESTING = 64
MAX_PRODUCT_ROOTS = 16


class ProductId(NamedTuple):
    """Where a ``product(id:)`` root's id comes from: a literal or a variable."""

    variable: bool
    value: str


class Shareable(NamedTuple):
    digest: bytes  # of the printed document: whitespace and comments do not matter
    operation: str | None  # the operation's name, for logs and metrics on a hit
    # The ids of the only products the answer can show, or None: it may show any.
    products: tuple[ProductId, ...] | None = None
    stock: bool = True  # whether it selects ``Product.stock`` anywhere


class _Reach:
    """What a walk saw: the ``product(id:)`` roots, and whether anything reaches further."""

    def __init__(self) -> None:
        self.products: list[ProductId] = []
        self.wide = False
        self.stock = False

    def root(self, field: FieldNode) -> None:
        if field.name.value != "product":
            self.wide = True
            return
        arguments = {a.name.value: a.value for a in field.arguments or ()}
        value = arguments.get("id")
        if set(arguments) != {"id"}:
            self.wide = True  # by sku (or no id): any product's change may matter
        elif isinstance(value, VariableNode):
            self.products.append(ProductId(True, value.name.value))
        elif isinstance(value, (StringValueNode, IntValueNode)):
            self.products.append(ProductId(False, value.value))
        else:
            self.wide = True

    def shareable(self, digest: bytes, operation: str | None) -> Shareable:
        narrow = not self.wide and 0 < len(set(self.products)) <= MAX_PRODUCT_ROOTS
        return Shareable(
            digest, operation, tuple(sorted(set(self.products))) if narrow else None, self.stock
        )


class Private(Exception):
    """The document may read something that is not the same for a whole class."""


class DocumentPolicy:
    """Answers ``shareable(document, operation_name)`` with the normalized document's
    digest and the operation's name, or ``None``; results are kept in a
    bounded LRU keyed by the text, so a repeated document costs one dict lookup."""

    def __init__(self, schema: GraphQLSchema, max_documents: int = 1_000) -> None:
        self.schema = schema
        self.max_documents = max_documents
        self.seen: LRUCache[tuple[str, str | None], Shareable | None] = LRUCache(max_documents)

    def shareable(self, document: str, operation_name: str | None) -> Shareable | None:
        key = (document, operation_name)
        try:
            found = self.seen[key]
        except KeyError:
            found = self.seen[key] = self._decide(document, operation_name)
        return found

    def _decide(self, document: str, operation_name: str | None) -> Shareable | None:
        try:
            parsed = parse(document, no_location=True, max_tokens=MAX_TOKENS)
        except (GraphQLError, RecursionError):
            return None  # the app answers the error; nothing to share
        operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
        fragments = {
            d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
        }
        if len(operations) + len(fragments) != len(parsed.definitions):
            return None
        if operation_name is None:
            chosen = operations if len(operations) == 1 else []
        else:
            chosen = [o for o in operations if o.name and o.name.value == operation_name]
        if len(chosen) != 1 or chosen[0].operation is not OperationType.QUERY:
            return None
        reach = _Reach()
        try:
            self._walk(chosen[0].selection_set, "Query", fragments, (), 0, set(), reach)
        except (Private, RecursionError):
            return None
        digest = hashlib.blake2b(print_ast(parsed).encode(), digest_size=16).digest()
        name = chosen[0].name
        return reach.shareable(digest, name.value if name else None)

    def _walk(
        self,
        selections: SelectionSetNode,
        type_name: str,
        fragments: dict[str, FragmentDefinitionNode],
        spreads: tuple[str, ...],
        depth: int,
        public: set[str],
        reach: _Reach,
    ) -> None:
        """Raises ``Private`` unless every field selected is a public catalog field, and
        notes in ``reach`` what the answer can show.

        ``public`` holds the fragments already proven public: a fragment spread twice per
        level is walked once, not 2**levels times (a refused answer is never stored, so
        the depth limit stays the app's to enforce; what a fragment reaches was noted in
        ``reach`` on its first walk)."""
        if depth > MAX_NESTING:
            raise Private
        allowed = PUBLIC_FIELDS.get(type_name)
        if allowed is None:
            raise Private
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name == "__typename":
                    continue
                if name not in allowed:
                    raise Private
                if type_name == "Query":
                    reach.root(selection)
                elif (type_name, name) in REACHES_OTHERS:
                    reach.wide = True
                elif type_name == "Product" and name == "stock":
                    reach.stock = True
                child = self._field_type(type_name, name)
                if selection.selection_set is not None:
                    self._walk(
                        selection.selection_set, child, fragments, spreads, depth + 1, public, reach
                    )
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    selection.type_condition.name.value if selection.type_condition else type_name
                )
                self._walk(
                    selection.selection_set, condition, fragments, spreads, depth + 1, public, reach
                )
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in public:
                    continue
                fragment = fragments.get(name)
                if fragment is None or name in spreads:
                    raise Private  # unknown or cyclic: the app refuses it
                self._walk(
                    fragment.selection_set,
                    fragment.type_condition.name.value,
                    fragments,
                    (*spreads, name),
                    depth + 1,
                    public,
                    reach,
                )
                public.add(name)

    def _field_type(self, type_name: str, field_name: str) -> str:
        owner = self.schema.get_type(type_name)
        field = getattr(owner, "fields", {}).get(field_name)
        if field is None:
            raise Private
        named = get_named_type(field.type)
        return "" if is_leaf_type(named) else named.name
