"""A user's SQL, proven read-only by parsing it (SPEC §6), never by searching its text.

What passes is exactly one query (SELECT, or a set operation of SELECTs, with CTEs) that reads
only tables of the customer database. Refused, each named in the error:

- any other statement: DROP, INSERT, UPDATE, DELETE, CREATE, COPY, ATTACH, PRAGMA, SET, CALL, …;
- several statements;
- a statement hidden inside the query (a data-modifying CTE), `SELECT … INTO`, row locks;
- functions that read files or the server's environment, or change state that outlives the
  query (`read_csv`, `parquet_scan`, `glob`, `pg_read_file`, `nextval`, `setseed`, `set_config`,
  `pg_advisory_lock`, `pg_notify`, …), or read tables past the check below (`query_to_xml`);
- a table the customer database does not have: DuckDB reads `FROM 'file.csv'` as a file;
- a LIMIT or OFFSET past a 64-bit integer (DuckDB would fail on it only when it runs).
"""

from __future__ import annotations

from decimal import Decimal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from audience.compile.catalog import Catalog
from audience.errors import InvalidValue, UnsafeQuery

_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
"""Table functions that make rows without reading anything."""
_REFUSED_PREFIXES = (
    "read_",
    "parquet_",
    "iceberg_",
    "delta_",
    "pg_read",
    "pg_ls_",
    "lo_",
    "dblink",
    "duckdb_",  # the engine's settings, secrets, files, logs
    "pragma_",
    "pg_advisory_",  # locks held past the query
    "pg_try_advisory_",
    "pg_replication_",  # replication slots and origins: made, dropped, moved
    "pg_create_",
    "pg_drop_",
    "pg_copy_",
    "pg_stat_reset",
    "pg_file_",  # adminpack: writes, renames, deletes server files
    "pg_wal_replay_",
    "pg_backup_",
    # another query's or table's rows as XML, past the check of the tables read
    "query_to_",
    "table_to_",
    "cursor_to_",
    "schema_to_",
    "database_to_",
)
_REFUSED_SUFFIXES = ("_scan", "_attach")
_REFUSED_NAMES = frozenset(
    {
        "glob",
        "sniff_csv",
        "query",
        "query_table",
        "getenv",
        "current_setting",  # settings name server paths (temp_directory, …)
        "which_secret",
        # state that outlives the query: sequences, the random seed, settings, logs
        "nextval",
        "setval",
        "setseed",
        "set_config",
        "write_log",
        "pg_notify",
        "pg_logical_emit_message",
        "pg_export_snapshot",
        "pg_promote",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_log_backend_memory_contexts",
        "pg_import_system_collations",
        "pg_stat_file",
        "txid_current",  # allocate a transaction id: a write, however small
        "pg_current_xact_id",
        # the server's own addresses and settings: nothing a customer extract needs
        "inet_server_addr",
        "inet_server_port",
        "inet_client_addr",
        "inet_client_port",
        # holding the server up, or stopping others
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "sleep_ms",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
    }
)
_HIDDEN_STATEMENTS = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Copy,
    exp.Alter,
    exp.Command,
)


def read_only_query(sql: str, *, dialect: str, catalog: Catalog, field: str = "query") -> exp.Query:
    """Parse `sql` in the engine's dialect and return it as a query, or raise UnsafeQuery (or,
    for SQL that does not parse, InvalidValue) naming what was refused and the `field`."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as error:
        raise UnsafeQuery(f"does not parse: {str(error).splitlines()[0]}", field=field) from None
    if not statements:
        raise UnsafeQuery("is empty", field=field)
    if len(statements) > 1:
        raise UnsafeQuery(
            f"has {len(statements)} statements; send the result of exactly one query",
            field=field,
        )
    (statement,) = statements
    if not isinstance(statement, exp.Query):
        raise UnsafeQuery(
            f"refused {_statement_word(sql, statement)}: only a query may run", field=field
        )
    _refuse_inside(statement, catalog, field)
    return statement


def _refuse_inside(query: exp.Query, catalog: Catalog, field: str) -> None:
    for node in query.walk():
        if isinstance(node, _HIDDEN_STATEMENTS):
            word = node.key.upper() if not isinstance(node, exp.Command) else str(node.this)
            raise UnsafeQuery(f"refused {word} inside the query: only reading may run", field=field)
        if isinstance(node, exp.Select):
            if node.args.get("into") is not None:
                raise UnsafeQuery("refused SELECT … INTO: it creates a table", field=field)
            if node.args.get("locks"):
                raise UnsafeQuery("refused FOR UPDATE/SHARE: it locks rows", field=field)
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if _refused_function(name):
                raise UnsafeQuery(
                    f"refused {name}(): it reads files, the server or changes state",
                    field=field,
                )
        if isinstance(node, exp.Table):
            _check_table(node, _names_in_scope(node), catalog, field)
        if isinstance(node, exp.Limit | exp.Offset | exp.Fetch):
            _check_row_count(node, field)


MAX_ROW_COUNT = 2**63 - 1
"""The largest LIMIT or OFFSET the engines take (a 64-bit integer)."""


def _check_row_count(clause: exp.Limit | exp.Offset | exp.Fetch, field: str) -> None:
    """Refuse a LIMIT, OFFSET or FETCH past MAX_ROW_COUNT: PostgreSQL refuses it when it plans
    the query, but DuckDB only when it runs it, so an apply that plans it would pass it."""
    count = clause.args.get("count") if isinstance(clause, exp.Fetch) else clause.expression
    if isinstance(count, exp.Literal) and not count.is_string:
        try:
            value = Decimal(count.this)
        except ArithmeticError:
            return  # not a number: the engine says so when it plans the query
        if value > MAX_ROW_COUNT:
            word = clause.key.upper()
            raise InvalidValue(
                f"{word} {count.this} is past the largest the engines take ({MAX_ROW_COUNT})",
                field=field,
            )


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


def _refused_function(name: str) -> bool:
    return (
        name in _REFUSED_NAMES
        or name.startswith(_REFUSED_PREFIXES)
        or name.endswith(_REFUSED_SUFFIXES)
    )


def _check_table(table: exp.Table, ctes: set[str], catalog: Catalog, field: str) -> None:
    source = table.this
    if isinstance(source, exp.Func):
        name = _function_name(source)
        if name not in _TABLE_FUNCTIONS and not isinstance(source, exp.GenerateSeries):
            raise UnsafeQuery(f"refused the table function {name}()", field=field)
        return
    name = table.name
    if not name:
        return  # a subquery or VALUES in FROM: its own nodes are checked
    if name.lower() in ctes or name in catalog.tables or name.lower() in catalog.tables:
        return
    raise UnsafeQuery(
        f"refused {name!r}: it is not a table of the customer database "
        f"(tables: {', '.join(sorted(catalog.tables)) or 'none'})",
        field=field,
    )


def _names_in_scope(node: exp.Expr) -> set[str]:
    """The names of the CTEs visible from `node` (those of every enclosing WITH)."""
    names: set[str] = set()
    parent: exp.Expr | None = node
    while parent is not None:
        with_ = parent.args.get("with_") if isinstance(parent, exp.Query) else None
        if isinstance(with_, exp.With):
            names.update(cte.alias_or_name.lower() for cte in with_.expressions)
        parent = parent.parent
    return names


def _statement_word(sql: str, statement: exp.Expr) -> str:
    """What the statement is, as its user wrote it (`DROP`, `COPY`, `PRAGMA`)."""
    words = sql.strip().split(None, 1)
    return words[0].upper() if words else statement.key.upper()
