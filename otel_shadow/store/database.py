"""Opening the DuckDB file: clear errors, schema migrations, and read-only SQL.

DuckDB lets one process write a file and, while it does, no other process open it. So the store
has two ways in: ``Store.open(path)`` (the one writer: the collector or the in-process exporter)
and ``Store.open(path, read_only=True)`` (the CLI, when no writer holds the file). When a
collector holds the file, the CLI asks it instead, over its SQL endpoint (see ``otel_shadow.access``).
Every connection is opened sandboxed (``readonly.SANDBOX_SETTINGS``: no file outside the database,
no extensions, configuration locked), and ``Store.query`` runs SQL through ``readonly.run_read_only``.

Every DuckDB error is mapped here to an ``otel_shadow.errors`` class whose message says what to do.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from ..errors import (
    DatabaseLocked,
    NotADatabase,
    QueryError,
    ReadOnlyQuery,
    SchemaTooNew,
    StoreError,
)
from .readonly import SANDBOX_SETTINGS, QueryLimits, check_read_only, run_read_only

__all__ = ["SCHEMA_VERSION", "QueryResult", "Store", "check_read_only", "json_value"]

SCHEMA_VERSION = 1
# A writer checkpoints on its own schedule (store.writer); DuckDB's default threshold would make
# every batched insert checkpoint about four times as often.
# the writer's allocator gives back what a large commit or checkpoint used once it is done
_WRITER_SETTINGS = {
    "checkpoint_threshold": "1GB",
    "allocator_flush_threshold": "16MB",
    "allocator_background_threads": True,
}
_LOCK_PID = re.compile(r"PID (\d+)")


def _sql(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def json_value(value: Any) -> Any:
    """A query value as standard JSON can carry it: timestamps ISO 8601, UUIDs and bytes hex,
    decimals float, NaN and infinities as the strings proto3's JSON mapping uses, a numpy array
    (a numeric list column, see ``readonly``) a list."""
    import datetime as _dt
    import uuid
    from decimal import Decimal

    import numpy as np

    if isinstance(value, np.ndarray):
        return [json_value(v) for v in value.tolist()]
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")  # as proto3 JSON
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A sandboxed connection: settings fixed at open, then the configuration locked for good."""
    settings = dict(SANDBOX_SETTINGS) if read_only else {**SANDBOX_SETTINGS, **_WRITER_SETTINGS}
    con = duckdb.connect(path, read_only=read_only, config=settings)
    try:
        # session settings are inherited by every cursor; the progress bar would print into the
        # output of `otel-shadow sql --format json`
        con.execute("SET enable_progress_bar = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def map_open_error(path: str, exc: BaseException) -> StoreError:
    """A DuckDB/OS error at open time → the error a user can act on."""
    text = str(exc)
    if "Could not set lock" in text or "Conflicting lock" in text:
        pid = _LOCK_PID.search(text)
        holder = f"process {pid.group(1)}{_command_of(int(pid.group(1)))}" if pid else "another process"
        return DatabaseLocked(
            f"database '{path}' is held by {holder} (DuckDB lets one process write a file, and no "
            "other open it meanwhile; a reader such as `otel-shadow sql` lets go when its query ends). "
            "Send spans to that process's collector, or run `otel-shadow collector --db "
            f"{path}` and export OTLP to it; `otel-shadow sql`/`report` then query the collector."
        )
    if "not a valid DuckDB database" in text or "is not a valid" in text:
        return NotADatabase(f"'{path}' exists but is not a DuckDB database; pass another --db path")
    if "No space left" in text or "File too large" in text:
        return StoreError(
            f"No space left on the device to write '{path}': free disk space and start again (nothing committed was lost)"
        )
    if "Permission denied" in text or "Read-only file system" in text or "read-only" in text.lower():
        return StoreError(
            f"cannot write '{path}': {_first_line(exc)}. Choose a writable location with --db or OTEL_SHADOW_DB"
        )
    if "Cannot open file" in text or "No such file" in text:
        return StoreError(f"cannot open '{path}': {_first_line(exc)}")
    return StoreError(f"cannot open '{path}': {_first_line(exc)}")


def _command_of(pid: int) -> str:
    """`` (the command line)`` of a local process, to tell a reader from a writer; empty if unknown."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read(4096).split(b"\0")
    except OSError:
        return ""
    words = [" ".join(a.decode(errors="replace").split()) for a in argv if a]
    command = " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words[:6]))
    return f" ({command[:160]})" if command else ""


def map_query_error(exc: BaseException) -> StoreError:
    text = _first_line(exc)
    if "No space left" in str(exc) or "File too large" in str(exc):
        return StoreError(f"no space left on the device: {text}; nothing of this batch was committed")
    if isinstance(exc, duckdb.Error) and "read-only mode" in str(exc):
        return ReadOnlyQuery(f"refused: this SQL access only reads ({text})")
    if isinstance(exc, duckdb.PermissionException):
        return ReadOnlyQuery(f"refused: this SQL access reads no file and loads no extension ({text})")
    if isinstance(exc, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)):
        return QueryError(text)
    return QueryError(text)


class Store:
    """One DuckDB database holding otel-shadow's tables and views."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, read_only: bool = False, lock_wait_s: float = 0.0) -> Store:
        """Open (and, for a writer, create and migrate) the database at ``path``.

        ``lock_wait_s``: how long to keep trying while another process holds the file (a reader's
        query takes seconds; a service should not fail to start because of one).
        """
        deadline = time.monotonic() + lock_wait_s
        while True:
            try:
                return cls._open(str(path), read_only)
            except DatabaseLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.25)

    @classmethod
    def _open(cls, path: str, read_only: bool) -> Store:
        if read_only and path != ":memory:" and not Path(path).exists():
            raise StoreError(
                f"database '{path}' does not exist yet; run `otel-shadow demo --db {path}` or a "
                "collector/exporter that writes it first"
            )
        if not read_only and path != ":memory:":
            parent = Path(path).resolve().parent
            if not parent.exists():
                raise StoreError(f"cannot create '{path}': folder '{parent}' does not exist")
        try:
            con = _connect(path, read_only)
        except (duckdb.Error, OSError) as exc:
            raise map_open_error(path, exc) from exc
        store = cls(con, path, read_only)
        try:
            store._migrate()
        except BaseException:
            con.close()
            raise
        return store

    # --- schema ---------------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        try:
            row = self.con.execute("SELECT value FROM otel_shadow_meta WHERE key = 'schema_version'").fetchone()
        except duckdb.CatalogException:
            return None
        if row is None:
            return None
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise NotADatabase(
                f"'{self.path}': otel_shadow_meta.schema_version is {str(row[0])[:40]!r}, not a number; the file "
                "was edited or damaged: restore it from a copy, or use another --db path"
            ) from None

    def _migrate(self) -> None:
        version = self.schema_version()
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"'{self.path}' was written by a newer otel-shadow (schema {version}; this one "
                f"reads up to {SCHEMA_VERSION}); upgrade otel-shadow (pip install -U otel-shadow)"
            )
        if self.read_only:
            if version is None:
                tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
                if tables and "spans" not in tables:
                    raise NotADatabase(f"'{self.path}' is a DuckDB database but not an otel-shadow store")
            return
        if version is None:
            existing = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            foreign = existing - {"otel_shadow_meta"}
            if foreign and "spans" not in existing:
                raise NotADatabase(
                    f"'{self.path}' is a DuckDB database of something else (tables: "
                    f"{', '.join(sorted(foreign)[:5])}); use another --db path"
                )
        try:
            self.con.execute("BEGIN TRANSACTION")
            self.con.execute(_sql("schema.sql"))
            for step in MIGRATIONS[(version or 0) :]:
                step(self.con)
            self.con.execute(_sql("views.sql"))
            self.con.execute(
                "INSERT OR REPLACE INTO otel_shadow_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            try:  # a failed COMMIT has already ended the transaction; the first error is the one to show
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise map_open_error(self.path, exc) from exc

    # --- reading --------------------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None, *, limits: QueryLimits = QueryLimits()) -> QueryResult:
        """Run read-only SQL (anything that would write is refused) and return columns and rows."""
        try:
            cursor = self.con.cursor()
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc
        try:
            columns, rows = run_read_only(cursor, sql, params, limits)
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc
        finally:
            cursor.close()
        return QueryResult(columns, rows)

    def reopen(self) -> None:
        """Replace the connection by a new one on the same file, for a writer whose database DuckDB
        invalidated (a fatal error, such as a checkpoint on a full disk, leaves it unusable until
        reopened). Committed data is in the file and its WAL, which the open replays. Raises what
        ``open`` raises while that still fails; the old connection is closed either way."""
        try:
            self.con.close()
        except duckdb.Error:
            pass
        self.con = Store._open(self.path, self.read_only).con

    def close(self) -> None:
        try:
            if not self.read_only:
                self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _migration_1(con: duckdb.DuckDBPyConnection) -> None:
    """Version 1: the tables of schema.sql (created above); nothing to convert."""


# MIGRATIONS[i] upgrades a database from version i to i + 1
MIGRATIONS = [_migration_1]
