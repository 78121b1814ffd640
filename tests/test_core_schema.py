"""``resolvers.core_schema``: the one read of Strawberry's private ``Schema._schema``.

If a Strawberry release moves or changes it, this fails first, naming the version.
"""

from importlib.metadata import version
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema

from resolvers.core_schema import core_schema
from resolvers.schema import schema

STRAWBERRY = f"strawberry-graphql {version('strawberry-graphql')}"
EXPORTED = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_core_schema_is_graphql_cores_schema_of_schema_graphql() -> None:
    assert hasattr(schema, "_schema"), f"{STRAWBERRY}: Schema has no _schema any more"
    core = core_schema(schema)
    assert isinstance(core, GraphQLSchema), f"{STRAWBERRY}: Schema._schema is {type(core)}"
    exported = build_schema(EXPORTED.read_text(encoding="utf-8"))
    names = {name for name in core.type_map if not name.startswith("__")}
    assert names == {name for name in exported.type_map if not name.startswith("__")}, (
        f"{STRAWBERRY}: Schema._schema's types are not schema.graphql's"
    )
    for name in names:
        ours, theirs = core.type_map[name], exported.type_map[name]
        assert isinstance(ours, type(theirs)), (STRAWBERRY, name)
        assert set(getattr(ours, "fields", {})) == set(getattr(theirs, "fields", {})), (
            STRAWBERRY,
            name,
        )
    assert core.query_type is not None, STRAWBERRY
    assert core.query_type.name == "Query", STRAWBERRY


def test_core_schema_refuses_what_is_not_graphql_core() -> None:
    class Other:
        _schema = object()

    with pytest.raises(TypeError, match="core_schema.py"):
        core_schema(Other())
