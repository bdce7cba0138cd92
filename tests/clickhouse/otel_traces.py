"""The OpenTelemetry Collector's ClickHouse exporter, as far as the tests need it: its table and its rows.

``ClickHouseExporterRows`` is an SDK ``SpanExporter`` that writes each ReadableSpan as the
collector-contrib ``clickhouseexporter`` writes a span (``exporter_traces.go``): hex ids ('' when
absent), kind and status as the proto enum names, the duration in ns, every attribute value
stringified as pdata's ``Value.AsString`` does (bools ``true``/``false``, ints in decimal, doubles
in their shortest form, arrays as JSON), links and events as Nested arrays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

DDL = (Path(__file__).parent / "otel_traces.sql").read_text()


def as_string(value: Any) -> str:
    """pdata's ``Value.AsString`` of an OTel attribute value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return value
    return json.dumps([_json(v) for v in value], separators=(",", ":"))


def _json(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


def _float(value: float) -> str:
    # Go's strconv 'f' with the shortest precision, 'e' below 1e-6 and from 1e21 (ES6 number to string)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        return np.format_float_scientific(value, trim="-", exp_digits=1)
    return np.format_float_positional(value, trim="-")


def _map(attributes: Any) -> dict[str, str]:
    return {k: as_string(v) for k, v in (attributes or {}).items()}


def _time(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def span_row(span: ReadableSpan) -> dict[str, Any]:
    """One otel_traces row, as the exporter inserts it."""
    context = span.get_span_context()
    assert context is not None, f"span {span.name!r} has no context"
    parent = span.parent
    resource = _map(span.resource.attributes)
    scope = span.instrumentation_scope
    start, end = span.start_time or 0, span.end_time or 0
    return {
        "Timestamp": _time(start),
        "TraceId": f"{context.trace_id:032x}",
        "SpanId": f"{context.span_id:016x}",
        "ParentSpanId": f"{parent.span_id:016x}" if parent is not None else "",
        "TraceState": context.trace_state.to_header(),
        "SpanName": span.name,
        "SpanKind": f"SPAN_KIND_{span.kind.name}",
        "ServiceName": resource.get("service.name", ""),
        "ResourceAttributes": resource,
        "ScopeName": scope.name if scope else "",
        "ScopeVersion": (scope.version or "") if scope else "",
        "SpanAttributes": _map(span.attributes),
        "Duration": end - start,
        "StatusCode": f"STATUS_CODE_{span.status.status_code.name}",
        "StatusMessage": span.status.description or "",
        "Events.Timestamp": [_time(e.timestamp) for e in span.events],
        "Events.Name": [e.name for e in span.events],
        "Events.Attributes": [_map(e.attributes) for e in span.events],
        "Links.TraceId": [f"{link.context.trace_id:032x}" for link in span.links],
        "Links.SpanId": [f"{link.context.span_id:016x}" for link in span.links],
        "Links.TraceState": [link.context.trace_state.to_header() for link in span.links],
        "Links.Attributes": [_map(link.attributes) for link in span.links],
    }


class ClickHouseExporterRows(SpanExporter):
    """Inserts finished spans into ``database.otel_traces`` of a chdb folder, in the exporter's format.

    chdb serves one folder per process: tests share one (``chdb_folder``), each in its own database.
    """

    def __init__(self, path: Path, database: str, table: str = "otel_traces") -> None:
        import chdb

        self.table = f"`{database}`.`{table}`"
        self.connection = chdb.connect(f"file:{path}")
        self.connection.query(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        self.connection.query(DDL.replace('"default"."otel_traces"', self.table))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if spans:
            body = "\n".join(json.dumps(span_row(s)) for s in spans)
            self.connection.query(f"INSERT INTO {self.table} FORMAT JSONEachRow\n{body}\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.connection.close()
