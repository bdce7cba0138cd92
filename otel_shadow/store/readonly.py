"""Read-only SQL for people and pipelines: ``otel-shadow sql`` / ``report`` and the collector's /v1/sql.

SQL typed by a user, or sent over a socket by anyone who reaches the collector, must not be able
to change the store or touch the host. That is guaranteed by construction, not by parsing:

1. **The database instance has no way out** (``SANDBOX_SETTINGS``, applied by ``Store.open`` to
   every connection otel-shadow opens): no file system access beyond the database itself (so no
   ``read_text('/etc/passwd')``, no ``COPY … TO``, no ``ATTACH``), no extension installed or
   loaded, and the configuration locked so that no statement can turn any of it back on.
2. **Every query runs in a ``READ ONLY`` transaction that is always rolled back.** DuckDB itself
   refuses any write inside it, however it is nested: ``EXPLAIN ANALYZE CREATE VIEW …``, a
   data-modifying CTE (``WITH d AS (DELETE … RETURNING *) SELECT …``).
3. **An allow-list of statement kinds** (queries, EXPLAIN of a query, a few catalogue PRAGMAs)
   refuses everything else up front, with a message that says what is allowed; it also keeps a
   ``COMMIT`` from ending the read-only transaction early.

On top, ``QueryLimits`` bounds what one query may cost: its text in bytes, its run time (the query
is interrupted) and its result in bytes and rows (streamed, counted as it is fetched, so a huge
result is refused before it is held).

A numeric list column (``DOUBLE[]``, ``BIGINT[]``, …: the latencies the analysis reads, one list per
arm) comes back as one numpy array per row, not a list of Python numbers, when the query has no
byte limit (the local CLI and report; a result bounded in bytes is fetched as before). Every other
value is what DuckDB's own fetch returns.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from ..errors import QueryError, QueryTimeout, ReadOnlyQuery, ResultTooLarge

__all__ = [
    "SANDBOX_SETTINGS",
    "QueryLimits",
    "check_read_only",
    "run_read_only",
]

# Settings of every DuckDB database otel-shadow opens (passed to duckdb.connect). The store needs
# nothing beyond its own file (and DuckDB's temporary directory, which stays allowed).
SANDBOX_SETTINGS: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}

# Statement kinds that only read. SHOW, DESCRIBE, SUMMARIZE, FROM-first and VALUES are SELECTs to
# DuckDB's parser; EXPLAIN is allowed when what it explains is itself allowed.
_READ_KINDS = frozenset({"SELECT"})
# PRAGMAs that only describe the catalogue (the others change settings or touch files)
_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "show",
        "show_tables",
        "show_tables_expanded",
        "database_size",
        "storage_info",
        "version",
        "platform",
        "database_list",
        "functions",
        "collations",
        "metadata_info",
    }
)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALYZE\s+|ANALYSE\s+)?(?:\([^()]*\)\s*)?", re.IGNORECASE)
_PRAGMA = re.compile(r"^\s*PRAGMA\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)

_ALLOWED = (
    "this SQL access is read-only: it runs queries (SELECT, WITH … SELECT, FROM, SHOW, DESCRIBE, "
    "SUMMARIZE, EXPLAIN of a query) and catalogue PRAGMAs such as table_info; query the views "
    "shadow_runs, shadow_pairs, shadow_summary"
)


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """What one read-only query may cost; ``None`` is no limit (the local CLI's default)."""

    max_sql_bytes: int | None = 1 * 2**20
    timeout_s: float | None = None
    max_result_bytes: int | None = None
    max_rows: int | None = None


def check_read_only(sql: str, max_sql_bytes: int | None = None) -> list[str]:
    """The statements of ``sql`` if every one only reads; ``ReadOnlyQuery`` or ``QueryError`` otherwise."""
    return [statement.query for statement in _checked(sql, max_sql_bytes)]


def _checked(sql: str, max_sql_bytes: int | None) -> list[Any]:
    if max_sql_bytes is not None and len(sql.encode("utf-8", "surrogatepass")) > max_sql_bytes:
        raise QueryError(f"SQL text longer than {max_sql_bytes} bytes; send a shorter query")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"invalid SQL: {_first_line(exc)}") from exc
    if not statements:
        raise QueryError("no SQL statement given")
    for statement in statements:
        _check_statement(statement, depth=0)
    return statements


def _check_statement(statement: Any, depth: int) -> None:
    kind = statement.type.name
    if kind in _READ_KINDS:
        return
    if kind == "EXPLAIN" and depth == 0:
        match = _EXPLAIN.match(statement.query)
        inner = duckdb.extract_statements(statement.query[match.end() :]) if match else []
        if len(inner) == 1:
            _check_statement(inner[0], depth + 1)
            return
    if kind == "PRAGMA":
        match = _PRAGMA.match(statement.query)
        if match and match.group(1).lower() in _READ_PRAGMAS:
            return
        name = match.group(1) if match else "this"
        raise ReadOnlyQuery(f"PRAGMA {name} is refused: {_ALLOWED}")
    raise ReadOnlyQuery(f"{kind} statements are refused: {_ALLOWED}")


def run_read_only(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[Any] | None = None,
    limits: QueryLimits = QueryLimits(),
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run allowed ``sql`` on ``cursor`` inside a READ ONLY transaction, within ``limits``.

    ``cursor`` must be a connection of its own (``con.cursor()``): the transaction is rolled back
    and the query interrupted through it. With several statements, the last one's result is returned.
    """
    statements = _checked(sql, limits.max_sql_bytes)
    timer = _Deadline(cursor, limits.timeout_s)
    try:
        cursor.execute("BEGIN TRANSACTION READ ONLY")
        try:
            fetched = None
            if len(statements) == 1 and statements[0].type.name == "SELECT" and limits.max_result_bytes is None:
                fetched = _fetch_with_arrays(cursor, sql, params, limits)
            if fetched is not None:
                columns, rows = fetched
            else:
                if len(statements) == 1:
                    result = cursor.execute(sql, params or [])
                else:
                    if params:
                        raise QueryError("parameters can only be given with a single statement")
                    for statement in statements:
                        result = cursor.execute(statement.query)
                columns = [d[0] for d in result.description] if result.description else []
                rows = _fetch_bounded(result, limits)
        finally:
            _rollback(cursor)
    except duckdb.InterruptException as exc:
        if timer.fired:
            raise QueryTimeout(
                f"the query ran longer than {limits.timeout_s:g} s and was stopped; narrow it "
                "(a WHERE on start_time, a LIMIT) or query a view that aggregates"
            ) from exc
        raise QueryError("the query was interrupted (the store is closing)") from exc
    finally:
        timer.cancel()
    return columns, rows


def _fetch_bounded(result: duckdb.DuckDBPyConnection, limits: QueryLimits) -> list[tuple[Any, ...]]:
    """Fetch the result in chunks, refusing it as soon as it passes the row or byte limit."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    max_rows, max_bytes = limits.max_rows, limits.max_result_bytes
    while True:
        chunk = result.fetchmany(2048)
        if not chunk:
            return rows
        rows.extend(chunk)
        if max_rows is not None and len(rows) > max_rows:
            raise ResultTooLarge(f"the result has more than {max_rows} rows; add a LIMIT or aggregate (GROUP BY)")
        if max_bytes is not None:
            size += sum(map(_row_bytes, chunk))
            if size > max_bytes:
                raise ResultTooLarge(
                    f"the result is larger than {max_bytes} bytes; select fewer columns, add a "
                    "LIMIT, or aggregate (GROUP BY)"
                )


# DuckDB types whose values Arrow gives back as DuckDB's own fetch does (TIMESTAMP_NS: both truncate
# to microseconds); a query with any other column type besides its numeric lists is fetched as before
_AS_DUCKDB = frozenset(
    {"VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
    | {"UBIGINT", "FLOAT", "DOUBLE", "DATE", "TIMESTAMP", "TIMESTAMP_NS"}
)
_NUMERIC_LIST = frozenset(
    f"{t}[]"
    for t in (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
    )
)
_ARROW_BATCH_ROWS = 2048


def _fetch_with_arrays(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None, limits: QueryLimits
) -> tuple[list[str], list[tuple[Any, ...]]] | None:
    """A SELECT with numeric list columns, its lists as numpy arrays (Arrow, no Python number per
    element); ``None`` when the query has no such column or a column Arrow would give back otherwise."""
    relation = cursor.sql(sql, params=params or None)
    if relation is None:
        return None
    types = [str(t) for t in relation.types]
    if not any(t in _NUMERIC_LIST for t in types) or not all(t in _NUMERIC_LIST or t in _AS_DUCKDB for t in types):
        return None
    rows: list[tuple[Any, ...]] = []
    for batch in relation.to_arrow_reader(_ARROW_BATCH_ROWS):
        rows.extend(zip(*(_column_values(batch.column(i), t) for i, t in enumerate(types))))
        if limits.max_rows is not None and len(rows) > limits.max_rows:
            raise ResultTooLarge(
                f"the result has more than {limits.max_rows} rows; add a LIMIT or aggregate (GROUP BY)"
            )
    return list(relation.columns), rows


def _column_values(column: Any, duckdb_type: str) -> list[Any]:
    import pyarrow as pa

    if duckdb_type == "TIMESTAMP_NS":
        return list(column.cast(pa.timestamp("us"), safe=False).to_pylist())
    if duckdb_type not in _NUMERIC_LIST or column.values.null_count:
        return list(column.to_pylist())  # a list holding NULLs stays a list (numpy has no NULL)
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [values[offsets[i] : offsets[i + 1]].copy() if valid[i] else None for i in range(len(column))]


def _row_bytes(row: tuple[Any, ...]) -> int:
    """About what a row weighs once encoded (strings and bytes by length, other values by text)."""
    total = 0
    for value in row:
        if value is None or isinstance(value, bool | int | float):
            total += 8
        elif isinstance(value, str | bytes):
            total += len(value) + 2
        else:
            total += len(str(value)) + 2
    return total


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    try:
        cursor.execute("ROLLBACK")
    except duckdb.Error:
        pass  # the transaction was already aborted by the failed statement


class _Deadline:
    """Interrupts the cursor's query when ``timeout_s`` passes (DuckDB has no statement timeout)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, timeout_s: float | None) -> None:
        self.fired = False
        self._timer: threading.Timer | None = None
        if timeout_s is not None:
            self._timer = threading.Timer(timeout_s, self._fire, args=(cursor.interrupt,))
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, interrupt: Callable[[], None]) -> None:
        self.fired = True
        interrupt()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
