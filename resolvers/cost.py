"""The estimated cost of a GraphQL operation: how many objects it may return.

An object a field resolves counts 1, and so does a ``totalCount`` (it runs a count). A
connection multiplies what one of its items costs by the page size it asks for
(``first``/``last``, else the default page size); ``nodes(ids:)`` by how many ids it
names; any other list by ``DEFAULT_LIST_SIZE``. Nested lists multiply. Edges, page
info and the connection object are structure and cost nothing of their own beyond one
for the list. Fragments (named and inline) count where they are spread; fields skipped
by ``@skip``/``@include`` do not count.

The same number serves the cost limit and the rate limiter, so a heavy query spends
what the REST calls it replaces would spend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)
from graphql.type.definition import GraphQLInterfaceType, GraphQLObjectType

from data.pagination import DEFAULT_PAGE_SIZE

DEFAULT_LIST_SIZE = DEFAULT_PAGE_SIZE
COUNTED_LEAVES = frozenset({"totalCount"})


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


class _Estimator:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def value(self, node: Any) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, ListValueNode):
            return list(node.values)
        return None

    def included(self, node: SelectionNode) -> bool:
        for directive in node.directives or ():
            arguments = {a.name.value: a.value for a in directive.arguments or ()}
            condition = arguments.get("if")
            flag = (
                self.variables.get(condition.name.value)
                if isinstance(condition, VariableNode)
                else getattr(condition, "value", None)
            )
            if directive.name.value == "skip" and flag is True:
                return False
            if directive.name.value == "include" and flag is False:
                return False
        return True

    def argument(self, field: FieldNode, name: str) -> Any:
        for argument in field.arguments or ():
            if argument.name.value == name:
                return self.value(argument.value)
        return None

    def page_size(self, field: FieldNode) -> int:
        for name in ("first", "last"):
            size = self.argument(field, name)
            if isinstance(size, int) and not isinstance(size, bool) and size > 0:
                return size
        return DEFAULT_PAGE_SIZE

    def list_size(self, field: FieldNode) -> int:
        ids = self.argument(field, "ids")
        if isinstance(ids, list):
            return max(1, len(ids))
        return DEFAULT_LIST_SIZE

    def selections(
        self,
        parent: GraphQLNamedType,
        nodes: Sequence[SelectionNode],
        spread: frozenset[str],
        page: int = 1,
        seen: set[str] | None = None,
    ) -> int:
        """What ``nodes`` cost under ``parent``; ``page`` is the size of the connection
        whose selection this is (its ``edges`` are that many). ``seen`` holds the
        fragments already spread into this selection: like execution, a fragment spread
        twice into one selection counts once (else ``...F ...F`` chains cost exponential
        time to estimate)."""
        seen = set() if seen is None else seen
        total = 0
        for node in nodes:
            if not self.included(node):
                continue
            if isinstance(node, FieldNode):
                total += self.field(parent, node, spread, page)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(
                    target or parent, node.selection_set.selections, spread, page, seen
                )
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spread or name in seen:  # validation reports
                    continue
                seen.add(name)
                target = self.schema.get_type(fragment.type_condition.name.value) or parent
                total += self.selections(
                    target, fragment.selection_set.selections, spread | {name}, page, seen
                )
        return total

    def field(
        self, parent: GraphQLNamedType, node: FieldNode, spread: frozenset[str], page: int
    ) -> int:
        name = node.name.value
        fields = (
            parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
        )
        definition = fields.get(name)
        if definition is None:  # __typename, introspection, or unknown (validation's job)
            return 1 if node.selection_set else 0
        if name in COUNTED_LEAVES:
            return 1
        output = definition.type
        if isinstance(output, GraphQLNonNull):
            output = output.of_type
        named = get_named_type(output)
        if not is_composite_type(named) or node.selection_set is None:
            return 0
        selections = node.selection_set.selections
        if named.name.endswith("Connection"):
            return 1 + self.selections(named, selections, spread, self.page_size(node))
        inner = self.selections(named, selections, spread)
        if parent.name.endswith("Connection") and name in ("edges", "pageInfo"):
            # Structure, not objects: a page of edges costs what its items cost.
            return page * inner if name == "edges" else inner
        if parent.name.endswith("Edge") and name == "node":
            return 1 + inner
        if isinstance(output, GraphQLList):
            return self.list_size(node) * (1 + inner)
        return 1 + inner


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> int:
    """How many objects the operation may return (0 when it names no operation)."""
    operation = _operation(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    estimator = _Estimator(schema, document, variables or {})
    return estimator.selections(root, operation.selection_set.selections, frozenset())
