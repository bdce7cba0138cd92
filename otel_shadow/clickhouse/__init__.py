"""otel-shadow's views and analysis on ClickHouse, over the OpenTelemetry Collector's ``otel_traces``.

Teams that store traces in ClickHouse through the Collector's ``clickhouseexporter`` get the same
views (``shadow_runs``, ``shadow_pairs``, ``shadow_summary``…) and the same report there:

    otel-shadow clickhouse-views --clickhouse http://localhost:8123/default
    otel-shadow report --clickhouse http://localhost:8123/default

It imports nothing from the app-side SDK, the instrumentation or the collector. Its drivers are
optional: clickhouse-connect for a server, chdb for ClickHouse in-process (docs/clickhouse.md).
"""

from .connection import ClickHouseLimits, ClickHouseReader, open_clickhouse, parse_url
from .views import VIEW_NAMES, create_views, views_sql

__all__ = [
    "VIEW_NAMES",
    "ClickHouseLimits",
    "ClickHouseReader",
    "create_views",
    "open_clickhouse",
    "parse_url",
    "views_sql",
]
