"""One compiled plan per GraphQL operation shape, its arguments bound per request.

A plan's SQL text depends on the document, the operation, the actor's visibility class
and a few variable values (``@skip``/``@include`` conditions, which of ``first``/``last``
is given and how large, the sort, whether an optional filter is there); the ids, slugs,
cursors and prices a page is asked for are only the statement's parameters. So the key
of a plan holds the document, the operation name, the actor's key and, per variable,
either its whole value (a *keyed* variable) or only its kind (a *bound* variable: absent,
null, empty or not, a string or a number), and each parameter of the plan knows where to
find its value in a later request (``gateway.compiled.planner.sql.Bound``).

A variable is bound when every use of it in the document is an argument listed in
``SCALAR_ROLES`` (or a field of a filter in ``FILTER_ROLES``); any other use (a directive,
a page size, an order, a list) keeps it keyed. The walker in ``gateway.compiled.graphql`` binds
exactly those arguments, so a value the SQL depends on is never bound. A bound value that
the plan cannot take (an id that does not decode, a cursor of another list) raises when
it is bound, and the request takes the full pipeline, which answers its error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_variable_values

from gateway.compiled.cache import BoundedCache, Record
from gateway.compiled.planner import CompiledQuery, actor_key
from gateway.compiled.planner.sql import bind

# (parent type, field, argument) whose variable value is only ever a statement parameter.
SCALAR_ROLES = frozenset(
    {
        ("Query", "product", "id"),
        ("Query", "product", "sku"),
        ("Query", "category", "slug"),
        *(
            (parent, "products", cursor)
            for parent in ("Query", "Category")
            for cursor in ("after", "before")
        ),
        ("Query", "categories", "after"),
        ("Query", "categories", "before"),
        ("Product", "reviews", "after"),
    }
)
FILTER_ROLES = frozenset({("Query", "products", "filter"), ("Category", "products", "filter")})
FILTER_BOUND = frozenset({"category", "q", "minPrice", "maxPrice"})  # ``inStock`` is SQL text


class _Uses:
    """Every use of every variable in one operation (skipped parts and fragments too)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.kinds: dict[str, set[str]] = {}

    def use(self, node: VariableNode, kind: str) -> None:
        self.kinds.setdefault(node.name.value, set()).add(kind)

    def keyed(self, node: Any) -> None:
        if isinstance(node, VariableNode):
            self.use(node, "keyed")
        elif isinstance(node, ListValueNode):
            for value in node.values:
                self.keyed(value)
        elif isinstance(node, ObjectValueNode):
            for field in node.fields:
                self.keyed(field.value)

    def argument(self, parent: str, name: str, argument: Any) -> None:
        role, value = (parent, name, argument.name.value), argument.value
        if role in SCALAR_ROLES and isinstance(value, VariableNode):
            self.use(value, "scalar")
        elif role in FILTER_ROLES and isinstance(value, VariableNode):
            self.use(value, "filter")
        elif role in FILTER_ROLES and isinstance(value, ObjectValueNode):
            for field in value.fields:
                if field.name.value in FILTER_BOUND and isinstance(field.value, VariableNode):
                    self.use(field.value, "scalar")
                else:
                    self.keyed(field.value)
        else:
            self.keyed(value)

    def selection_set(
        self, selection_set: SelectionSetNode | None, parent: Any, seen: set[str]
    ) -> None:
        for selection in selection_set.selections if selection_set else ():
            for directive in selection.directives or ():
                for argument in directive.arguments or ():
                    self.keyed(argument.value)
            if isinstance(selection, FieldNode):
                name = selection.name.value
                fields = (
                    parent.fields
                    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                    else {}
                )
                parent_name = parent.name if fields else ""
                for argument in selection.arguments or ():
                    self.argument(parent_name, name, argument)
                field = fields.get(name)
                self.selection_set(
                    selection.selection_set, get_named_type(field.type) if field else None, seen
                )
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                self.selection_set(selection.selection_set, target, seen)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None and fragment.name.value not in seen:
                    seen.add(fragment.name.value)
                    self.selection_set(
                        fragment.selection_set,
                        self.schema.get_type(fragment.type_condition.name.value),
                        seen,
                    )


@dataclass(frozen=True, eq=False)
class DocumentShape:
    """What of one operation's variables its plans are keyed by, and what they bind."""

    operation: OperationDefinitionNode
    operation_name: str | None  # as Strawberry names it (the document's, when it has one)
    bound: dict[str, str]  # variable -> "scalar" or "filter"
    keyed: tuple[str, ...]

    @classmethod
    def of(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        operation_name: str | None,
    ) -> DocumentShape:
        uses = _Uses(schema, document)
        uses.selection_set(operation.selection_set, schema.query_type, set())
        bound, keyed = {}, []
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            kinds = uses.kinds.get(name, set())
            if kinds in ({"scalar"}, {"filter"}):
                bound[name] = next(iter(kinds))
            else:
                keyed.append(name)  # used otherwise, or not at all: its value is the shape's
        return cls(operation, operation_name, bound, tuple(keyed))

    def signature(self, variables: Any) -> tuple[Any, ...] | None:
        """The variables' part of a plan's key (``None``: not a JSON object of variables)."""
        if variables is None:
            variables = {}
        elif not isinstance(variables, dict):
            return None
        try:
            keyed = orjson.dumps(
                {k: variables[k] for k in self.keyed if k in variables}, option=orjson.OPT_SORT_KEYS
            )
            kinds = tuple(_bound_kind(variables, name, kind) for name, kind in self.bound.items())
        except TypeError:  # not JSON the usual way (an integer beyond 64 bits)
            return None
        return keyed, kinds


def _bound_kind(variables: dict[str, Any], name: str, kind: str) -> Any:
    if name not in variables:
        return "absent"  # the default value, if any: a literal of the document
    value = variables[name]
    return _filter_kind(value) if kind == "filter" and isinstance(value, dict) else _kind(value)


def _kind(value: Any) -> Any:
    """A bound value's kind: all a plan's SQL may depend on (``q`` adds a predicate only
    when it is not empty; coercion treats each JSON type alike)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "text" if value else "empty"
    if isinstance(value, bool):
        return value
    return type(value).__name__


def _filter_kind(value: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        sorted(
            (name, _kind(item) if name in FILTER_BOUND else orjson.dumps(item))
            for name, item in value.items()
        )
    )


@dataclass(eq=False)
class GraphQLPlan:
    """A compiled statement for one operation shape, and the operation name the access
    log gives its answers."""

    compiled: CompiledQuery
    operation: str | None
    shape: DocumentShape


class GraphQLPlans:
    """The app's GraphQL plans by shape, and its documents' shapes, in one bounded LRU
    (``size`` entries; hits and misses count plan lookups)."""

    def __init__(self, schema: GraphQLSchema, size: int, record: Record | None = None) -> None:
        self.schema = schema
        self.cache = BoundedCache(size, record=record)

    def shape(
        self,
        query: str,
        operation_name: str | None,
        document: DocumentNode,
        operation: OperationDefinitionNode,
    ) -> DocumentShape:
        """The shape of a validated document's operation (made on its first request).

        ``operation_name`` is Strawberry's (the operation's own name, when the request
        named none and the document has one operation): a request without a name finds
        the same shape as one that names it."""
        key = ("document", query, operation_name)
        shape: DocumentShape | None = self.cache.get(key, count=False)
        if shape is None:
            shape = DocumentShape.of(self.schema, document, operation, operation_name)
            self.cache.put(key, shape)
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) == 1:  # then no operationName means this same operation
                self.cache.put(("document", query, None), shape)
        return shape

    @staticmethod
    def key(shape: DocumentShape, query: str, variables: Any, actor: Any) -> tuple[Any, ...] | None:
        signature = shape.signature(variables)
        if signature is None:
            return None
        return ("plan", query, shape.operation_name, actor_key(actor), *signature)

    def remember(self, key: tuple[Any, ...], plan: GraphQLPlan) -> None:
        self.cache.put(key, plan)

    def get(self, key: tuple[Any, ...]) -> GraphQLPlan | None:
        plan: GraphQLPlan | None = self.cache.get(key)
        return plan

    def coerce(self, shape: DocumentShape, variables: Any) -> dict[str, Any] | None:
        """The variables as graphql-core coerces them (``None``: it refuses them)."""
        coerced = get_variable_values(
            self.schema, shape.operation.variable_definitions or (), variables or {}
        )
        return coerced.coerced if isinstance(coerced, VariableValues) else None

    def parameters(self, plan: GraphQLPlan, variables: Any) -> tuple[Any, ...] | None:
        """The plan's parameters for this request's variables, or ``None`` when a value
        cannot take the plan (the pipeline answers it)."""
        coerced = self.coerce(plan.shape, variables)
        if coerced is None:
            return None
        compiled = plan.compiled
        try:
            return bind(compiled.params, compiled.sources, coerced)
        except Exception:  # a value the plan cannot take: the reference decides
            return None

    def find(
        self, query: Any, operation_name: Any, variables: Any, actor: Any
    ) -> tuple[GraphQLPlan, tuple[Any, ...]] | None:
        """The plan of a request's shape and its parameters (the compiled lane asks)."""
        if not isinstance(query, str) or not (
            operation_name is None or isinstance(operation_name, str)
        ):
            return None
        shape = self.cache.get(("document", query, operation_name), count=False)
        if shape is None:
            return None
        key = self.key(shape, query, variables, actor)
        plan = None if key is None else self.get(key)
        if plan is None:
            return None
        params = self.parameters(plan, variables)
        return None if params is None else (plan, params)

    def __len__(self) -> int:
        return len(self.cache)
