"""The compiled read path: a validated catalog query answered by one SQL statement.

``CompiledReads`` runs after Strawberry has parsed and validated the document. It turns
the operation into the neutral selection tree of ``gateway.compiled.planner`` (fragments, aliases,
``@skip``/``@include`` and variables resolved here, with graphql-core's own coercion) and
sets the result, so graphql-core never executes. Whatever it does not cover returns
``None`` and the resolver path runs exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
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

from data.errors import DomainError
from data.outages import unavailable_from
from data.services.products import DEFAULT_PRODUCT_SORT, ProductFilter
from gateway.compiled.graphql_plans import (
    FILTER_BOUND,
    FILTER_ROLES,
    SCALAR_ROLES,
    GraphQLPlan,
    GraphQLPlans,
)
from gateway.compiled.planner import (
    NODE_TYPES,
    CompiledQuery,
    Sel,
    Unsupported,
    compile_query,
    compiled_data,
    fetch_json,
    page_request,
)
from gateway.compiled.planner.sql import Bound, bind, mapped
from resolvers.core_schema import core_schema
from resolvers.ids import database_id_of, from_global_id

log = logging.getLogger("gateway.graphql")
_CONDITIONS = {"skip", "include"}


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues,
    ) -> None:
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
            abstract, runtime
        )

    def collect(
        self, selection_sets: Iterable[SelectionSetNode | None], runtime: GraphQLObjectType
    ) -> dict[str, list[FieldNode]]:
        """Fields by response key, in the order graphql-core would complete them."""
        grouped: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            if selection_set is not None:
                self._visit(selection_set, runtime, grouped, set())
        return grouped

    def _visit(
        self,
        selection_set: SelectionSetNode,
        runtime: GraphQLObjectType,
        grouped: dict[str, list[FieldNode]],
        seen: set[str],
    ) -> None:
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

    def selections(
        self, selection_sets: Iterable[SelectionSetNode | None], runtime: GraphQLObjectType
    ) -> tuple[Sel, ...]:
        return tuple(
            self._sel(key, nodes, runtime)
            for key, nodes in self.collect(selection_sets, runtime).items()
        )

    def _sel(self, key: str, nodes: list[FieldNode], parent: GraphQLObjectType) -> Sel:
        name = nodes[0].name.value
        if name == "__typename":
            return Sel(key, name)
        if name.startswith("__"):
            raise Unsupported("introspection")
        field = parent.fields.get(name)
        if field is None:
            raise Unsupported(name)
        args = _bound(
            parent.name, name, nodes[0], get_argument_values(field, nodes[0], self.variables)
        )
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

    def _nodes(
        self, key: str, name: str, args: dict[str, Any], sets: list[SelectionSetNode | None]
    ) -> Sel:
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


def _variable(name: str, member: str | None = None) -> Any:
    """Where a bound value is in a request's coerced variables."""
    if member is None:
        return lambda variables: variables[name]
    return lambda variables: variables[name][member]


def _bound(parent: str, name: str, node: FieldNode, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with the values of ``graphql_plans``' roles bound to their variables
    (the plan of this shape takes them from each request)."""
    for argument in node.arguments or ():
        role, value, arg = (parent, name, argument.name.value), argument.value, argument.name.value
        given = args.get(arg)
        if given is None:
            continue
        if role in SCALAR_ROLES and isinstance(value, VariableNode):
            args[arg] = Bound(given, _variable(value.name.value))
        elif role in FILTER_ROLES and isinstance(given, dict):
            members = dict(given)
            if isinstance(value, VariableNode):
                for member in FILTER_BOUND:
                    if members.get(member) is not None:
                        members[member] = Bound(
                            members[member], _variable(value.name.value, member)
                        )
            elif isinstance(value, ObjectValueNode):
                for field in value.fields:
                    member = field.name.value
                    if (
                        member in FILTER_BOUND
                        and isinstance(field.value, VariableNode)
                        and members.get(member) is not None
                    ):
                        members[member] = Bound(members[member], _variable(field.value.name.value))
            args[arg] = members
    return args


def _product_args(args: dict[str, Any]) -> dict[str, Any]:
    raw = args.get("filter") or {}
    where = ProductFilter(
        category=raw.get("category"),
        q=raw.get("q"),
        min_price=raw.get("minPrice"),
        max_price=raw.get("maxPrice"),
        in_stock=raw.get("inStock"),
    )
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
            database_id = (
                mapped(raw_id, lambda v: database_id_of("Product", v))
                if raw_id is not None
                else None
            )
        except DomainError as exc:
            raise Unsupported("invalid id") from exc
        return {"id": database_id, "sku": args.get("sku")}
    if (parent, name) == ("Query", "category"):
        return {"slug": args["slug"]}
    raise Unsupported(f"{parent}.{name} arguments")


def operation_of(document: Any, operation_name: str | None) -> OperationDefinitionNode:
    """The query operation a request runs, or ``Unsupported``."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        raise Unsupported("not a query")
    return operation


def coerced_variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode, raw_variables: dict[str, Any] | None
) -> VariableValues:
    variables = get_variable_values(
        schema, operation.variable_definitions or (), raw_variables or {}
    )
    if not isinstance(variables, VariableValues):
        raise Unsupported("variables")
    return variables


def plan_operation(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    raw_variables: dict[str, Any] | None,
    variables: VariableValues | None = None,
) -> tuple[Sel, ...]:
    """The root selections of a query, or ``Unsupported``."""
    operation = operation_of(document, operation_name)
    if variables is None:
        variables = coerced_variables(schema, operation, raw_variables)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walker = _Walker(schema, fragments, variables)
    assert schema.query_type is not None
    return walker.selections([operation.selection_set], schema.query_type)


def compiled_for(
    ec: Any, actor: Any, plans: GraphQLPlans | None
) -> tuple[CompiledQuery, tuple[Any, ...]] | None:
    """The statement for a validated request and its parameters (``None``: the compiler
    does not cover it). The plan of the request's shape is made on its first request and
    bound to the values of every later one."""
    schema = core_schema(ec.schema)
    try:
        operation = operation_of(ec.graphql_document, ec.operation_name)
    except Unsupported:
        return None
    key = None
    if plans is not None and isinstance(ec.query, str):
        shape = plans.shape(ec.query, ec.operation_name, ec.graphql_document, operation)
        key = plans.key(shape, ec.query, ec.variables, actor)
        plan = None if key is None else plans.get(key)
        if plan is not None:
            params = plans.parameters(plan, ec.variables)
            if params is not None:
                return plan.compiled, params
            key = None  # a value this shape's plan cannot take: compiled afresh, not kept
    try:
        variables = coerced_variables(schema, operation, ec.variables)
        compiled = compile_query(
            actor, plan_operation(schema, ec.graphql_document, ec.operation_name, None, variables)
        )
    except Unsupported:
        return None
    if key is not None and plans is not None:
        # The plan's sources must give back the very parameters it was compiled with.
        if bind(compiled.params, compiled.sources, variables.coerced) == compiled.params:
            plans.remember(key, GraphQLPlan(compiled, ec.operation_name, shape))
        else:  # pragma: no cover - a source that disagrees with its compiler is a bug
            log.error("compiled_plan_unbindable")
    return compiled, compiled.params


class CompiledReads:
    """Answers catalog queries on PostgreSQL with one statement; else ``None`` (the
    schema's ``resolvers.fast_reads.FastReads``, installed by the app factory)."""

    def __init__(self, plans: GraphQLPlans | None) -> None:
        self.plans = plans

    async def answer(self, ec: Any) -> dict[str, Any] | None:
        context = ec.context
        if (
            getattr(context, "compiled_reads", False)
            and getattr(context, "identity_error", None) is None
            and context.db.dialect == "postgresql"
        ):
            return await self._run(ec, context)
        return None

    async def _run(self, ec: Any, context: Any) -> dict[str, Any] | None:
        try:
            found = compiled_for(ec, context.actor, self.plans)
            if found is None:
                return None
            compiled, params = found
            return compiled_data(compiled, await fetch_json(context.db, compiled.sql, params))
        except Exception as exc:
            # A bug here must not become the answer: log it, and let the reference answer
            # (a database outage is not logged here: the reference answers UNAVAILABLE).
            if unavailable_from(exc, transport=True) is None:
                log.exception("compiled_read_failed")
            return None
