"""``otel-shadow clickhouse-views``: create otel-shadow's views in a ClickHouse database.

The views read the table the OpenTelemetry Collector's ``clickhouseexporter`` writes
(``otel_traces`` by default, its ``traces_table_name``). Creating them is the one step that
writes, so it uses its own connection without ``readonly``; every later read is read-only.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from typing import Any

from ..errors import ConfigError, StoreError
from .connection import ClickHouseTarget, _first_line, _import, _redact, parse_url

__all__ = ["VIEW_NAMES", "create_views", "views_sql"]

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


def create_views(url: str, traces_table: str = "otel_traces", traces_database: str | None = None) -> list[str]:
    """Create (or replace) the views in the database ``url`` names; returns their names."""
    target = parse_url(url)
    statements = views_sql(target.database, traces_table, traces_database)
    run = _writer(target)
    try:
        for statement in statements:
            try:
                run(statement)
            except Exception as exc:
                name = statement.split("VIEW", 1)[1].split("AS", 1)[0].strip()
                raise StoreError(
                    f"creating {name} in {target.where} failed: {_first_line(exc)}. Does "
                    f"{traces_database or target.database}.{traces_table} exist (the exporter creates it on "
                    "start), and may this user CREATE VIEW?"
                ) from exc
    finally:
        run.close()
    return list(VIEW_NAMES)


class _Runner:
    def __init__(self, execute: Any, close: Any) -> None:
        self._execute, self.close = execute, close

    def __call__(self, sql: str) -> None:
        self._execute(sql)


def _writer(target: ClickHouseTarget) -> _Runner:
    if target.kind == "chdb":
        chdb = _import("chdb", "chdb")
        try:
            connection = chdb.connect(f"file:{target.path}" if target.path else ":memory:")
        except Exception as exc:
            raise StoreError(f"cannot open {target.where}: {_first_line(exc)}") from exc
        return _Runner(lambda sql: connection.query(sql), connection.close)
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
    return _Runner(lambda sql: client.command(sql), client.close)
