"""``otel-shadow clickhouse-views``: create otel-shadow's views in a ClickHouse database.

The views read the table the OpenTelemetry Collector's ``clickhouseexporter`` writes
(``otel_traces`` by default, its ``traces_table_name``), through a narrow table
(``otel_shadow_span_rows``) that a materialized view fills at each insert into it. Creating them is
the one step that writes, so it uses its own connection without ``readonly``; every later read is
read-only.

The narrow table is created only if absent, and only then are the spans already in otel_traces
copied into it (one ``INSERT … SELECT``, after the materialized view exists, so that no span
inserted meanwhile is missed): re-running ``clickhouse-views`` never copies a span twice. A span
inserted while that copy runs may be stored twice, which the views remove at read as they remove
a re-sent span.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from typing import Any

from ..errors import ConfigError, StoreError
from .connection import ClickHouseTarget, _first_line, _import, _redact, parse_url

__all__ = ["MATERIALIZED_VIEW", "SPAN_TABLE", "VIEW_NAMES", "backfill_sql", "create_views", "views_sql"]

SPAN_TABLE = "otel_shadow_span_rows"
MATERIALIZED_VIEW = "otel_shadow_span_rows_mv"
VIEW_NAMES = (
    "otel_shadow_spans",
    "otel_shadow_span_links",
    "otel_shadow_runs",
    "shadow_runs",
    "shadow_pairs",
    "shadow_coverage",
    "shadow_summary",
    "shadow_noise_floor",
    "shadow_metrics",
    "shadow_metric_summary",
    "shadow_scores",
    "shadow_score_summary",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _quote(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"{what} {name!r} is not a plain ClickHouse name (letters, digits, _)")
    return f"`{name}`"


def views_sql(database: str, traces_table: str = "otel_traces", traces_database: str | None = None) -> list[str]:
    """The CREATE VIEW statements, in order, for views in ``database`` over ``traces_table``."""
    text = resources.files(__package__).joinpath("views.sql").read_text(encoding="utf-8")
    db = _quote(database, "database")
    traces = f"{_quote(traces_database or database, 'database')}.{_quote(traces_table, 'traces table')}"
    text = string.Template(text).substitute(db=db, traces=traces)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip()]


def backfill_sql(statements: list[str]) -> str:
    """The one copy of otel_traces' rows into the narrow table: the materialized view's own SELECT."""
    view = next(s for s in statements if s.startswith("CREATE MATERIALIZED VIEW"))
    target, select = view.split(" TO ", 1)[1].split(" AS\n", 1)
    return f"INSERT INTO {target} {select}"


def create_views(url: str, traces_table: str = "otel_traces", traces_database: str | None = None) -> list[str]:
    """Create (or replace) the views in the database ``url`` names; returns their names."""
    target = parse_url(url)
    statements = views_sql(target.database, traces_table, traces_database)
    traces = f"{traces_database or target.database}.{traces_table}"
    table = f"{_quote(target.database, 'database')}.{_quote(SPAN_TABLE, 'table')}"
    run = _writer(target)
    try:
        created = not run.exists(table)
        try:
            for statement in statements:
                _run(run, statement, target.where, traces)
            if created:  # only a table created just now is filled from otel_traces (never twice)
                _run(run, backfill_sql(statements), target.where, traces)
        except StoreError:
            if created:  # a half-made table would never be filled: the next run starts afresh
                view = f"{_quote(target.database, 'database')}.{_quote(MATERIALIZED_VIEW, 'view')}"
                run(f"DROP VIEW IF EXISTS {view}")
                run(f"DROP TABLE IF EXISTS {table}")
            raise
    finally:
        run.close()
    return list(VIEW_NAMES)


def _run(run: _Runner, statement: str, where: str, traces: str) -> None:
    try:
        run(statement)
    except Exception as exc:
        head = statement.split(" AS", 1)[0].split("(", 1)[0].split("\n", 1)[0]
        raise StoreError(
            f"{head} in {where} failed: {_first_line(exc)}. Does {traces} exist (the exporter creates it on "
            "start), and may this user CREATE TABLE, CREATE VIEW, INSERT into and SELECT from them "
            "(docs/clickhouse.md)?"
        ) from exc


class _Runner:
    def __init__(self, execute: Any, close: Any, scalar: Any) -> None:
        self._execute, self.close, self._scalar = execute, close, scalar

    def __call__(self, sql: str) -> None:
        self._execute(sql)

    def exists(self, table: str) -> bool:
        return str(self._scalar(f"EXISTS TABLE {table}")).strip() == "1"


def _writer(target: ClickHouseTarget) -> _Runner:
    if target.kind == "chdb":
        chdb = _import("chdb", "chdb")
        try:
            connection = chdb.connect(f"file:{target.path}" if target.path else ":memory:")
        except Exception as exc:
            raise StoreError(f"cannot open {target.where}: {_first_line(exc)}") from exc
        return _Runner(lambda sql: connection.query(sql), connection.close, lambda sql: connection.query(sql, "CSV"))
    clickhouse_connect = _import("clickhouse_connect", "clickhouse-connect")
    try:
        client = clickhouse_connect.get_client(
            host=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            database=target.database,
            secure=target.secure,
            connect_timeout=10,
        )
    except Exception as exc:
        raise StoreError(f"cannot reach {_redact(target.where)}: {_first_line(exc)}") from exc
    return _Runner(lambda sql: client.command(sql), client.close, client.command)
