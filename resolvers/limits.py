"""GraphQL document limits, checked after parsing and before validation and execution.

Tokens are counted by the parser itself (``max_tokens`` aborts parsing); depth, aliases
and the estimated cost are walked here, once per fragment (a fragment's depth and alias
count do not depend on where it is spread), so a document that spreads fragments into
each other exponentially is measured in linear time. Introspection (``__schema``,
``__type``) is not counted where it is allowed, so consoles and clients can load the
schema; graphql-core's ``MaxIntrospectionDepthRule`` bounds its nesting instead (the lists
``fields``, ``interfaces``, ``possibleTypes``, ``inputFields`` nested at most three deep,
which every standard schema query stays within). A refused document is answered
``BAD_USER_INPUT`` with a message naming the limit, and nothing is validated or run.

The limits come from the settings through ``GraphQLLimits``, which the router puts on
each request's context (one schema serves apps with different settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import MaxIntrospectionDepthRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from resolvers.core_schema import core_schema
from resolvers.cost import estimate_cost


@dataclass(frozen=True)
class GraphQLLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    max_cost: int = 5000
    max_batch: int = 10
    introspection: bool = True
    suggestions: bool = True


DEFAULT_LIMITS = GraphQLLimits()
# The meta-fields that introspect the schema (``__typename`` is an ordinary leaf).
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
# graphql-core appends its suggestions to the message: " Did you mean 'a' or 'b'?"
TOKEN_MESSAGE = "Syntax Error: Document contains more than"
SUGGESTION = re.compile(r"\s*Did you mean .*\?\s*$", re.DOTALL)


def limit_error(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


class _Shape:
    """Depth and alias count of a document, each fragment measured once."""

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, tuple[int, int]] = {}
        self.active: set[str] = set()

    def fragment(self, name: str) -> tuple[int, int]:
        if name in self.memo:
            return self.memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.active:  # unknown or cyclic: validation's job
            return 0, 0
        self.active.add(name)
        measured = self.selection_set(definition.selection_set)
        self.active.discard(name)
        self.memo[name] = measured
        return measured

    def selection_set(self, selection_set: SelectionSetNode | None) -> tuple[int, int]:
        """(depth, aliases): depth counts nested fields, a leaf field being depth 1."""
        if selection_set is None:
            return 0, 0
        depth = aliases = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                if node.name.value in INTROSPECTION_FIELDS:
                    continue  # bounded by MaxIntrospectionDepthRule, or refused outright
                inner_depth, inner_aliases = self.selection_set(node.selection_set)
                depth = max(depth, 1 + inner_depth)
                aliases += inner_aliases + (1 if node.alias else 0)
            elif isinstance(node, InlineFragmentNode):
                inner_depth, inner_aliases = self.selection_set(node.selection_set)
                depth, aliases = max(depth, inner_depth), aliases + inner_aliases
            elif isinstance(node, FragmentSpreadNode):
                inner_depth, inner_aliases = self.fragment(node.name.value)
                depth, aliases = max(depth, inner_depth), aliases + inner_aliases
        return depth, aliases


def check_limits(execution_context: ExecutionContext, limits: GraphQLLimits) -> GraphQLError | None:
    """The first limit the parsed document exceeds, as the error to answer with."""
    document = execution_context.graphql_document
    if document is None:  # nothing parsed, nothing to measure
        return None
    shape = _Shape(document)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    measured = [shape.selection_set(op.selection_set) for op in operations]
    # As graphql-depth-limit and Strawberry count: the root fields are depth 0, so
    # "depth 10" allows eleven levels of fields ({ a { b } } is depth 1).
    depth = max((levels - 1 for levels, _ in measured), default=0)
    if depth > limits.max_depth:
        return limit_error(
            f"The query is nested {depth} levels deep; the depth limit is {limits.max_depth}."
        )
    aliases = sum(a for _, a in measured)
    if aliases > limits.max_aliases:
        return limit_error(
            f"The query uses {aliases} aliases; the alias limit is {limits.max_aliases}."
        )
    schema = core_schema(execution_context.schema)
    cost = estimate_cost(
        schema, document, execution_context.variables, execution_context.operation_name
    )
    if cost > limits.max_cost:
        return limit_error(
            f"The query may return about {cost} objects; the cost limit is "
            f"{limits.max_cost}. Ask for smaller pages (first/last)."
        )
    return None


# Documents within the limits, by document (the DocumentCache hands the same object for
# the same text), operation, variables and limits: a repeated request is measured once.
# Refusals are measured again (rare, and their error objects are not shared). Bounded;
# each entry keeps its document alive so that its id is not reused by another.
_PASSED: dict[tuple[Any, ...], DocumentNode] = {}
MAX_PASSED = 1024


def checked_limits(
    execution_context: ExecutionContext, limits: GraphQLLimits
) -> GraphQLError | None:
    """``check_limits``, remembered for a document asked again with the same variables."""
    document = execution_context.graphql_document
    if document is None:  # nothing parsed, nothing to measure
        return None
    try:
        variables = orjson.dumps(execution_context.variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON-able the usual way (an integer beyond 64 bits): measured
        return check_limits(execution_context, limits)
    key = (id(document), execution_context.operation_name, variables, limits)
    if _PASSED.get(key) is document:
        return None
    error = check_limits(execution_context, limits)
    if error is None:
        if len(_PASSED) >= MAX_PASSED:
            _PASSED.clear()
        _PASSED[key] = document
    return error


def limits_of(execution_context: object) -> GraphQLLimits:
    context = getattr(execution_context, "context", None)
    return getattr(context, "limits", None) or DEFAULT_LIMITS


class Limits(SchemaExtension):
    """Applies the request's ``GraphQLLimits`` before anything is validated or run."""

    def on_operation(self) -> Iterator[None]:
        limits = limits_of(self.execution_context)
        self.execution_context.parse_options["max_tokens"] = limits.max_tokens
        extra = (
            MaxIntrospectionDepthRule if limits.introspection else NoSchemaIntrospectionCustomRule
        )
        self.execution_context.validation_rules = (*self.execution_context.validation_rules, extra)
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            if error.message.startswith(TOKEN_MESSAGE):  # the parser's, naming no limit
                error.message = (
                    f"The query has more than {limits.max_tokens} tokens; the "
                    f"token limit is {limits.max_tokens}."
                )
            elif not limits.suggestions:
                error.message = SUGGESTION.sub("", error.message)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.pre_execution_errors is None:
            error = checked_limits(context, limits_of(context))
            if error is not None:
                # Set before validation runs, so validation is skipped altogether.
                context.pre_execution_errors = [error]
        yield
