"""The compiled read path: a validated catalog query answered by one SQL statement.

``CompiledReads`` runs after Strawberry has parsed and validated the document. It turns
the operation into the neutral selection tree of ``data.compiled`` (fragments, aliases,
``@skip``/``@include`` and variables resolved here, with graphql-core's own coercion) and
sets the result, so graphql-core never executes. Whatever it does not cover returns
``None`` and the resolver path runs exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution.values import (
    VariableValues,
    get_argument_values,
    get_directive_values,
    get_variable_values,
)
from graphql.type import GraphQLIncludeDirective
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from data.compiled import (
    NODE_TYPES,
    CompiledQuery,
    Sel,
    Unsupported,
    actor_key,
    compile_query,
    fetch_compiled,
    page_request,
)
from data.errors import DomainError
from data.outages import unavailable_from
from data.services.products import DEFAULT_PRODUCT_SORT, ProductFilter
from resolvers.ids import database_id_of, from_global_id

log = logging.getLogger("gateway.graphql")
_CONDITIONS = {"skip", "include"}


class _Walker:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: VariableValues) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            if directive.name.value not in _CONDITIONS:
                raise Unsupported(f"@{directive.name.value}")
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip and skip.get("if"):
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and not include.get("if"))

    def _applies(self, condition: Any, runtime: GraphQLObjectType) -> bool:
        if condition is None or condition.name.value == runtime.name:
            return True
        abstract = self.schema.get_type(condition.name.value)
        return isinstance(abstract, GraphQLInterfaceType) and self.schema.is_sub_type(
            abstract, runtime)

    def collect(self, selection_sets: Iterable[SelectionSetNode | None],
                runtime: GraphQLObjectType) -> dict[str, list[FieldNode]]:
        """Fields by response key, in the order graphql-core would complete them."""
        grouped: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            if selection_set is not None:
                self._visit(selection_set, runtime, grouped, set())
        return grouped

    def _visit(self, selection_set: SelectionSetNode, runtime: GraphQLObjectType,
               grouped: dict[str, list[FieldNode]], seen: set[str]) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, runtime):
                    self._visit(selection.selection_set, runtime, grouped, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if name in seen or fragment is None:
                    continue
                seen.add(name)
                if getattr(fragment, "variable_definitions", None):
                    raise Unsupported("fragment variables")
                if self._applies(fragment.type_condition, runtime):
                    self._visit(fragment.selection_set, runtime, grouped, seen)

    def selections(self, selection_sets: Iterable[SelectionSetNode | None],
                   runtime: GraphQLObjectType) -> tuple[Sel, ...]:
        return tuple(self._sel(key, nodes, runtime)
                     for key, nodes in self.collect(selection_sets, runtime).items())

    def _sel(self, key: str, nodes: list[FieldNode], parent: GraphQLObjectType) -> Sel:
        name = nodes[0].name.value
        if name == "__typename":
            return Sel(key, name)
        if name.startswith("__"):
            raise Unsupported("introspection")
        field = parent.fields.get(name)
        if field is None:
            raise Unsupported(name)
        args = get_argument_values(field, nodes[0], self.variables)
        named = get_named_type(field.type)
        sets = [n.selection_set for n in nodes]
        if name in ("node", "nodes") and parent is self.schema.query_type:
            return self._nodes(key, name, args, sets)
        children: tuple[Sel, ...] = ()
        if isinstance(named, GraphQLObjectType):
            children = self.selections(sets, named)
        elif isinstance(named, GraphQLInterfaceType):
            raise Unsupported("abstract type")
        return Sel(key, name, _neutral_args(parent.name, name, args), children)

    def _nodes(self, key: str, name: str, args: dict[str, Any],
               sets: list[SelectionSetNode | None]) -> Sel:
        ids = [args["id"]] if name == "node" else args["ids"]
        if len(ids) > 100:
            raise Unsupported("too many ids")
        items = []
        for global_id in ids:
            try:
                type_name, database_id = from_global_id(global_id)
            except DomainError as exc:
                raise Unsupported("invalid id") from exc
            children: tuple[Sel, ...] = ()
            if type_name in NODE_TYPES:
                runtime = self.schema.get_type(type_name)
                assert isinstance(runtime, GraphQLObjectType)
                children = self.selections(sets, runtime)
            elif type_name in ("User", "Order") or name == "node":
                raise Unsupported("node type")
            items.append(Sel(key, "node", {"type": type_name, "id": database_id}, children))
        return items[0] if name == "node" else Sel(key, "nodes", {}, tuple(items))


def _product_args(args: dict[str, Any]) -> dict[str, Any]:
    raw = args.get("filter") or {}
    where = ProductFilter(category=raw.get("category"), q=raw.get("q"),
                          min_price=raw.get("minPrice"), max_price=raw.get("maxPrice"),
                          in_stock=raw.get("inStock"))
    order = args.get("orderBy")
    sort = DEFAULT_PRODUCT_SORT
    if order is not None:
        descending = order["direction"].value == "desc"
        sort = ("-" if descending else "") + order["field"].value
    return {"where": where, "sort": sort, "page": page_request(args)}


def _neutral_args(parent: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """GraphQL arguments as the data layer's values (ids decoded, filters built)."""
    if not args:
        return {}
    if name == "products" and parent in ("Query", "Category"):
        return _product_args(args)
    if (parent, name) in (("Query", "categories"), ("Product", "reviews")):
        return {"page": page_request(args)}
    if (parent, name) == ("Query", "product"):
        if (args.get("id") is None) == (args.get("sku") is None):
            raise Unsupported("id or sku")
        try:
            raw_id = args.get("id")
            database_id = database_id_of("Product", raw_id) if raw_id is not None else None
        except DomainError as exc:
            raise Unsupported("invalid id") from exc
        return {"id": database_id, "sku": args.get("sku")}
    if (parent, name) == ("Query", "category"):
        return {"slug": args["slug"]}
    raise Unsupported(f"{parent}.{name} arguments")


def plan_operation(schema: GraphQLSchema, document: Any, operation_name: str | None,
                   raw_variables: dict[str, Any] | None) -> tuple[Sel, ...]:
    """The root selections of a query, or ``Unsupported``."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        raise Unsupported("not a query")
    variables = get_variable_values(schema, operation.variable_definitions or (),
                                    raw_variables or {})
    if not isinstance(variables, VariableValues):
        raise Unsupported("variables")
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    walker = _Walker(schema, fragments, variables)
    assert schema.query_type is not None
    return walker.selections([operation.selection_set], schema.query_type)


# Compiled statements (or None: "not covered") by document, operation, variables and
# the actor's key: a page asked again skips planning and SQL building.
_CACHE: dict[tuple[Any, ...], CompiledQuery | None] = {}
CACHE_SIZE = 512


def _compiled(ec: Any, actor: Any) -> CompiledQuery | None:
    key = None
    if isinstance(ec.query, str):
        try:
            variables = orjson.dumps(ec.variables or {}, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # e.g. an integer beyond 64 bits: not cached, still answered
            variables = None
        if variables is not None:
            key = (ec.query, ec.operation_name, variables, actor_key(actor))
            if key in _CACHE:
                return _CACHE[key]
    try:
        root = plan_operation(ec.schema._schema, ec.graphql_document, ec.operation_name,
                              ec.variables)
        compiled: CompiledQuery | None = compile_query(actor, root)
    except Unsupported:
        compiled = None
    if key is not None:
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.clear()  # simple and bounded; a hot page is back after one request
        _CACHE[key] = compiled
    return compiled


@dataclass(eq=False)
class LanePlan:
    """A compiled statement, and the operation name the access log gives its answers;
    ``memo``: the statement's last text and the answer made from it, body and headers
    (the lane's)."""

    compiled: CompiledQuery
    operation: str | None
    memo: tuple[str, bytes, tuple[tuple[bytes, bytes], ...]] | None = None


class LanePlans:
    """Requests this gateway's full pipeline answered with one compiled statement, by
    everything that decides that answer: the query text, the operation name, the
    variables and the actor's key. ``gateway.compiled_lane`` answers their repeats
    without routing them through FastAPI and Strawberry again; each app has its own
    (its limits and settings decided what was admitted). Bounded like ``_CACHE``."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._plans: dict[tuple[Any, ...], LanePlan] = {}

    @staticmethod
    def key(query: Any, operation_name: Any, variables: Any,
            actor: Any) -> tuple[Any, ...] | None:
        """The key of a request (``None``: one the lane leaves to the pipeline)."""
        if not isinstance(query, str) or not (operation_name is None
                                               or isinstance(operation_name, str)):
            return None
        if variables is None:
            variables = {}
        elif not isinstance(variables, dict):
            return None
        try:
            encoded = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        return query, operation_name, encoded, actor_key(actor)

    def remember(self, key: tuple[Any, ...] | None, plan: LanePlan) -> None:
        if key is None:
            return
        if len(self._plans) >= self.size:
            self._plans.clear()
        self._plans[key] = plan

    def get(self, key: tuple[Any, ...] | None) -> LanePlan | None:
        return None if key is None else self._plans.get(key)

    def __len__(self) -> int:
        return len(self._plans)


def _remember(plans: LanePlans, ec: Any, actor: Any, compiled: CompiledQuery) -> None:
    plan = LanePlan(compiled, ec.operation_name)
    plans.remember(plans.key(ec.query, ec.operation_name, ec.variables, actor), plan)
    operations = [d for d in ec.graphql_document.definitions
                  if isinstance(d, OperationDefinitionNode)]
    if len(operations) == 1:  # then no operationName means this same operation
        plans.remember(plans.key(ec.query, None, ec.variables, actor), plan)


class CompiledReads(SchemaExtension):
    """Answers catalog queries on PostgreSQL with one statement; else does nothing."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        context = ec.context
        if (getattr(context, "compiled_reads", False) and ec.result is None
                and getattr(context, "identity_error", None) is None
                and context.db.dialect == "postgresql"):
            data = await self._run(ec, context)
            if data is not None:
                ec.result = ExecutionResult(data=data)
        yield

    async def _run(self, ec: Any, context: Any) -> dict[str, Any] | None:
        try:
            compiled = _compiled(ec, context.actor)
            if compiled is None:
                return None
            data = await fetch_compiled(context.db, compiled)
            plans: LanePlans | None = getattr(context, "lane_plans", None)
            if data is not None and plans is not None:
                _remember(plans, ec, context.actor, compiled)
            return data
        except Exception as exc:
            # A bug here must not become the answer: log it, and let the reference answer
            # (a database outage is not logged here: the reference answers UNAVAILABLE).
            if unavailable_from(exc, transport=True) is None:
                log.exception("compiled_read_failed")
            return None
