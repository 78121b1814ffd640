"""``product_counts``: how many products each (category, active, in stock) group holds.

Every filter of a product list made only of visibility (``is_active``), category and
``in_stock`` is a union of these groups, so its total is a SUM over at most four rows per
category instead of a COUNT over the catalog. The database keeps the table right on its
own, with triggers on ``products``: whatever writes products (the services, the seed's
bulk inserts, a migration, ``psql``) moves the counts in the same transaction.

- PostgreSQL: statement-level triggers over the statement's transition tables. One
  statement adds its rows' net change per group, in group order, with one upsert; a
  statement that changes no group (an order taking 1 of 10 left) writes nothing. Row locks
  on a group's counter are taken in key order within a statement, so two statements that
  change several groups never deadlock on each other; concurrent changes of one group wait
  for each other's commit instead of losing one (``total = total + delta``).
- SQLite: row-level triggers (it has no others); its one writer at a time has no races.

Rows whose count reaches zero stay (at most four per category); a category's rows go
with it (``ON DELETE CASCADE``). The table is declared in ``data.models`` so that
``create_all`` makes it, and its triggers come with the ``products`` table there too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

TABLE = "product_counts"
GROUP = "category_id, is_active, in_stock"
FUNCTION = "product_counts_apply"
EVENTS = ("insert", "update", "delete")

# Rebuilds the whole table from products: the backfill of the migration that adds it.
REBUILD = (
    f"DELETE FROM {TABLE}",
    f"INSERT INTO {TABLE} ({GROUP}, total) "
    "SELECT category_id, is_active, stock > 0, count(*) FROM products "
    "GROUP BY category_id, is_active, stock > 0",
)


def _pg_apply(rows: str) -> str:
    """Adds the net change of ``rows`` (``category_id, is_active, in_stock, d``) per group."""
    return (
        f"INSERT INTO {TABLE} AS c ({GROUP}, total) "
        f"SELECT {GROUP}, sum(d) FROM ({rows}) r GROUP BY {GROUP} HAVING sum(d) <> 0 "
        f"ORDER BY {GROUP} "
        f"ON CONFLICT ({GROUP}) DO UPDATE SET total = c.total + EXCLUDED.total;"
    )


def _pg_rows(table: str, d: int) -> str:
    return f"SELECT category_id, is_active, stock > 0 AS in_stock, {d} AS d FROM {table}"


_POSTGRESQL_CREATE = (
    f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_pg_apply(_pg_rows("new_rows", 1))}
  ELSIF TG_OP = 'DELETE' THEN
    {_pg_apply(_pg_rows("old_rows", -1))}
  ELSIF TG_OP = 'UPDATE' THEN
    {_pg_apply(_pg_rows("new_rows", 1) + " UNION ALL " + _pg_rows("old_rows", -1))}
  ELSE
    DELETE FROM {TABLE};
  END IF;
  RETURN NULL;
END $$""",
    f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON products "
    f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()",
    f"CREATE TRIGGER {TABLE}_update AFTER UPDATE ON products "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()",
    f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON products "
    f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()",
    f"CREATE TRIGGER {TABLE}_truncate AFTER TRUNCATE ON products "
    f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()",
)


def _sqlite_add(row: str, d: int) -> str:
    return (
        f"INSERT INTO {TABLE} ({GROUP}, total) "
        f"VALUES ({row}.category_id, {row}.is_active, {row}.stock > 0, {d}) "
        f"ON CONFLICT ({GROUP}) DO UPDATE SET total = total + {d};"
    )


_SQLITE_CREATE = (
    f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON products BEGIN {_sqlite_add('NEW', 1)} END",
    # Only a change of group moves a count: an order that leaves stock above zero fires
    # nothing.
    f"CREATE TRIGGER {TABLE}_update AFTER UPDATE OF category_id, is_active, stock ON products "
    "WHEN OLD.category_id IS NOT NEW.category_id OR OLD.is_active IS NOT NEW.is_active "
    "OR (OLD.stock > 0) IS NOT (NEW.stock > 0) "
    f"BEGIN {_sqlite_add('OLD', -1)} {_sqlite_add('NEW', 1)} END",
    f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON products BEGIN {_sqlite_add('OLD', -1)} END",
)


def create_statements(dialect: str) -> tuple[str, ...]:
    """The SQL that installs the triggers on ``products`` in this dialect."""
    if dialect == "postgresql":
        return _POSTGRESQL_CREATE
    if dialect == "sqlite":
        return _SQLITE_CREATE
    raise NotImplementedError(f"product_counts triggers for {dialect}")


def drop_statements(dialect: str) -> tuple[str, ...]:
    """The SQL that removes them again (``products`` itself stays)."""
    events = (*EVENTS, "truncate") if dialect == "postgresql" else EVENTS
    on = " ON products" if dialect == "postgresql" else ""
    drops = tuple(f"DROP TRIGGER IF EXISTS {TABLE}_{event}{on}" for event in events)
    if dialect == "postgresql":
        drops += (f"DROP FUNCTION IF EXISTS {FUNCTION}()",)
    return drops


def install(connection: Any) -> None:
    """Creates the triggers on a (synchronous) connection, inside its transaction."""
    for statement in create_statements(connection.dialect.name):
        connection.execute(text(statement))


def uninstall(connection: Any) -> None:
    """Removes the triggers (and PostgreSQL's function); the table stays."""
    for statement in drop_statements(connection.dialect.name):
        connection.execute(text(statement))


def rebuild(connection: Any) -> None:
    """Counts every product again (a synchronous connection, inside its transaction)."""
    for statement in REBUILD:
        connection.execute(text(statement))
