"""A compiled read path: catalog reads as one JSON-building SQL statement (PostgreSQL)."""

from data.compiled.graph import (
    NODE_TYPES,
    CompiledQuery,
    Sel,
    actor_key,
    compile_query,
    page_request,
)
from data.compiled.run import compiled_data, fetch_compiled, fetch_json, fetch_query, fetch_raw
from data.compiled.sql import Unsupported

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
