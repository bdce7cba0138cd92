"""Every environment variable otel-shadow reads, with its default and meaning, defined once.

Each constant's docstring-comment is what ``docs/configuration.md`` documents; a test checks that
every name here appears there.
"""

from __future__ import annotations

import os
from typing import Final

OTEL_SHADOW_DISABLED: Final = "OTEL_SHADOW_DISABLED"
"""``true`` turns every candidate off (the kill switch); primaries run unchanged. Default ``false``."""

OTEL_SHADOW_SAMPLE_RATE: Final = "OTEL_SHADOW_SAMPLE_RATE"
"""Default fraction of calls whose candidates run, 0.0–1.0, for experiments that set none. Default 1.0."""

OTEL_SHADOW_CAPTURE_CONTENT: Final = "OTEL_SHADOW_CAPTURE_CONTENT"
"""``true`` records experiment inputs and outputs on spans (personal data: off by default)."""

OTEL_SHADOW_WORKERS: Final = "OTEL_SHADOW_WORKERS"
"""Threads that run synchronous candidates. Default 4."""

OTEL_SHADOW_MAX_PENDING: Final = "OTEL_SHADOW_MAX_PENDING"
"""Cap on queued plus running candidates (sync and async); beyond it candidates are dropped. Default 256."""

OTEL_SHADOW_TIMEOUT: Final = "OTEL_SHADOW_TIMEOUT"
"""Default per-candidate timeout in seconds. Default 30."""

OTEL_SHADOW_EXIT_GRACE: Final = "OTEL_SHADOW_EXIT_GRACE"
"""Seconds pending candidates get to finish at interpreter exit before they are recorded as cancelled. Default 2."""

OTEL_SHADOW_DB: Final = "OTEL_SHADOW_DB"
"""Path of the DuckDB database used by the exporter and the CLI. Default ``otel-shadow.duckdb``."""

OTEL_SHADOW_CLICKHOUSE: Final = "OTEL_SHADOW_CLICKHOUSE"
"""ClickHouse database ``report``, ``sql`` and ``clickhouse-views`` read instead of the DuckDB file: ``http(s)://user:password@host:8123/db`` or ``chdb:FOLDER``."""

OTEL_SHADOW_CONFIG: Final = "OTEL_SHADOW_CONFIG"
"""YAML file of shadow rules for zero-code instrumentation of LLM client calls."""

OTEL_SHADOW_COLLECTOR_TOKEN: Final = "OTEL_SHADOW_COLLECTOR_TOKEN"
"""Bearer token the collector requires on OTLP and SQL requests (unset: no authentication)."""

OTEL_SHADOW_COLLECTOR_HOST: Final = "OTEL_SHADOW_COLLECTOR_HOST"
"""Address the collector binds. Default ``127.0.0.1`` (loopback only)."""

OTEL_SHADOW_COLLECTOR_GRPC_PORT: Final = "OTEL_SHADOW_COLLECTOR_GRPC_PORT"
"""OTLP/gRPC port. Default 4317."""

OTEL_SHADOW_COLLECTOR_HTTP_PORT: Final = "OTEL_SHADOW_COLLECTOR_HTTP_PORT"
"""OTLP/HTTP port (also /v1/sql, /healthz, /readyz, /metrics). Default 4318."""

OTEL_SHADOW_COLLECTOR_STORE_ALL: Final = "OTEL_SHADOW_COLLECTOR_STORE_ALL"
"""``true`` stores every span; by default only shadow-experiment and GenAI spans, the rest counted."""

OTEL_SHADOW_COLLECTOR_MAX_REQUEST_BYTES: Final = "OTEL_SHADOW_COLLECTOR_MAX_REQUEST_BYTES"
"""Largest request accepted, after decompression. Default 67108864 (64 MiB)."""

OTEL_SHADOW_COLLECTOR_MAX_INFLIGHT_BYTES: Final = "OTEL_SHADOW_COLLECTOR_MAX_INFLIGHT_BYTES"
"""Request bytes admitted but not yet committed; beyond it requests are refused retryably. Default 134217728."""

OTEL_SHADOW_COLLECTOR_SQL: Final = "OTEL_SHADOW_COLLECTOR_SQL"
"""Serve read-only SQL on /v1/sql (``true``, the default, always behind a token; ``false``: no endpoint)."""

OTEL_SHADOW_COLLECTOR_SQL_TIMEOUT: Final = "OTEL_SHADOW_COLLECTOR_SQL_TIMEOUT"
"""Seconds one /v1/sql query may run before it is stopped. Default 30."""

OTEL_SHADOW_COLLECTOR_SQL_MAX_RESULT_BYTES: Final = "OTEL_SHADOW_COLLECTOR_SQL_MAX_RESULT_BYTES"
"""Largest /v1/sql result, in bytes (a larger one is refused with 413). Default 64 MiB."""

OTEL_SHADOW_COLLECTOR_DRAIN_TIMEOUT: Final = "OTEL_SHADOW_COLLECTOR_DRAIN_TIMEOUT"
"""Seconds SIGTERM may take: the collector exits within them, whatever is running. Default 10."""

OTEL_SHADOW_COLLECTOR_UNHEALTHY_AFTER: Final = "OTEL_SHADOW_COLLECTOR_UNHEALTHY_AFTER"
"""Seconds without a successful commit after which /healthz answers 503. Default 300."""

OTEL_SHADOW_COLLECTOR_SEGMENTS: Final = "OTEL_SHADOW_COLLECTOR_SEGMENTS"
"""Folder the collector closes committed rows into, as Parquet segments (unset: none)."""

OTEL_SHADOW_COLLECTOR_SEGMENT_SECONDS: Final = "OTEL_SHADOW_COLLECTOR_SEGMENT_SECONDS"
"""With segments: seconds between segments. Default 60."""

OTEL_SHADOW_COLLECTOR_ID: Final = "OTEL_SHADOW_COLLECTOR_ID"
"""With segments: the name of this collector's segment files (default: made once, kept in the DuckDB file)."""

OTEL_SHADOW_S3_ENDPOINT: Final = "OTEL_SHADOW_S3_ENDPOINT"
"""Endpoint URL of an S3-compatible store for ``--segments s3://bucket/prefix`` (MinIO, Ceph, R2, …); unset: AWS S3."""

OTEL_SHADOW_S3_MAX_BYTES: Final = "OTEL_SHADOW_S3_MAX_BYTES"
"""Most bytes of segments one ``--segments s3://…`` read fetches. Default 17179869184 (16 GiB)."""

OTEL_SHADOW_S3_MAX_OBJECTS: Final = "OTEL_SHADOW_S3_MAX_OBJECTS"
"""Most entries one ``--segments s3://…`` read lists under the prefix. Default 100000."""

OTEL_SHADOW_COLLECTOR_TLS_CERT: Final = "OTEL_SHADOW_COLLECTOR_TLS_CERT"
"""PEM certificate: serve both OTLP transports over TLS (with OTEL_SHADOW_COLLECTOR_TLS_KEY)."""

OTEL_SHADOW_COLLECTOR_TLS_KEY: Final = "OTEL_SHADOW_COLLECTOR_TLS_KEY"
"""PEM private key for OTEL_SHADOW_COLLECTOR_TLS_CERT."""

OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""OpenTelemetry's GenAI content switch: ``NO_CONTENT`` (default), ``SPAN_ONLY``, ``EVENT_ONLY``,
``SPAN_AND_EVENT``; legacy ``true`` means ``SPAN_ONLY``."""

OTEL_SHADOW_PRICES: Final = "OTEL_SHADOW_PRICES"
"""YAML file of model prices (USD per million input/output tokens) over the shipped defaults (otel_shadow.pricing)."""

OTEL_SHADOW_REDACT_RULES: Final = "OTEL_SHADOW_REDACT_RULES"
"""YAML file of redaction rules for captured content, applied by the app side and by the collector at ingest (otel_shadow.redaction)."""

OTEL_SHADOW_WEBHOOK_SECRET: Final = "OTEL_SHADOW_WEBHOOK_SECRET"
"""Shared secret the alert webhook sends in ``X-Otel-Shadow-Secret`` (``otel-shadow watch``; never logged)."""

DEFAULT_DB: Final = "otel-shadow.duckdb"

_TRUE = frozenset({"1", "true", "yes", "on"})


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable the way OpenTelemetry does (case-insensitive ``true``)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in _TRUE


def env_float(name: str, default: float) -> float:
    """Read a float environment variable; a malformed value falls back to the default, with a warning."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        import logging

        logging.getLogger("otel_shadow").warning("%s=%r is not a number; using the default %s", name, value, default)
        return default


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable; a malformed value falls back to the default."""
    return int(env_float(name, float(default)))
