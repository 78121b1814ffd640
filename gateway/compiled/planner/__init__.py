"""A compiled read path: catalog reads as one JSON-building SQL statement (PostgreSQL)."""

from gateway.compiled.planner.graph import (
    NODE_TYPES,
    CompiledQuery,
    Sel,
    actor_key,
    compile_query,
    page_request,
)
from gateway.compiled.planner.run import (
    compiled_data,
    fetch_compiled,
    fetch_json,
    fetch_query,
    fetch_raw,
)
from gateway.compiled.planner.sql import Unsupported

__all__ = [
    "NODE_TYPES",
    "CompiledQuery",
    "Sel",
    "Unsupported",
    "actor_key",
    "compile_query",
    "compiled_data",
    "fetch_compiled",
    "fetch_json",
    "fetch_query",
    "fetch_raw",
    "page_request",
]
