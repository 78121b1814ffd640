"""Parsed and validated documents, kept per query text.

Clients send the same few documents again and again; parsing and validating one costs
more than resolving a small query. ``DocumentCache`` keeps the parsed document of each
query text (and parse options) in a bounded LRU, with the validation errors it had
under each set of rules, so a repeated document is parsed and validated once.

Unlike Strawberry's ``ParserCache``, a document that does not parse is not cached and
not raised from the hook: Strawberry parses it again and reports the syntax error its
usual way (with the extensions the errors extension adds).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from resolvers.core_schema import core_schema

MAX_DOCUMENTS = 512


@dataclass
class Parsed:
    document: DocumentNode
    # validation errors of this document, per tuple of validation rules
    errors: dict[tuple[Any, ...], list[GraphQLError]] = field(default_factory=dict)


@lru_cache(maxsize=MAX_DOCUMENTS)
def _parse(query: str, options: frozenset[tuple[str, Any]]) -> Parsed:
    return Parsed(parse(query, **dict(options)))


class DocumentCache(SchemaExtension):
    """Parse and validate each distinct document once (bounded: ``MAX_DOCUMENTS``)."""

    parsed: Parsed | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            try:
                self.parsed = _parse(context.query, frozenset(context.parse_options.items()))
            except GraphQLError:
                pass  # parsed again by Strawberry, which reports it
            else:
                context.graphql_document = self.parsed.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        parsed = self.parsed
        if (
            parsed is not None
            and context.graphql_document is parsed.document
            and context.pre_execution_errors is None
            and context.validation_rules
        ):
            schema: GraphQLSchema = core_schema(context.schema)
            rules = (schema, *context.validation_rules)
            if rules not in parsed.errors:
                parsed.errors[rules] = validate_document(
                    schema, parsed.document, context.validation_rules
                )
            context.pre_execution_errors = list(parsed.errors[rules])
        yield
