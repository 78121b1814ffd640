"""A compiled read path: catalog reads as one JSON-building SQL statement (PostgreSQL)."""

from data.compiled.graph import (
    NODE_TYPES,
    CompiledQuery,
    Sel,
    actor_key,
    compile_query,
    page_request,
)
from data.compiled.run import fetch_compiled, fetch_json, fetch_query
from data.compiled.sql import Unsupported

__all__ = ["NODE_TYPES", "CompiledQuery", "Sel", "Unsupported", "actor_key", "compile_query",
           "fetch_compiled", "fetch_json", "fetch_query", "page_request"]
