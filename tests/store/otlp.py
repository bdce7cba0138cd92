"""Build OTLP requests for tests (the protobuf messages any client would send)."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(
            kvlist_value=KeyValueList(values=[KeyValue(key=k, value=any_value(v)) for k, v in value.items()])
        )
    return AnyValue(string_value=str(value))


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def span(
    name: str = "op",
    attrs: dict[str, Any] | None = None,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent: bytes = b"",
    start: int = 1_700_000_000_000_000_000,
    duration_ms: float = 10.0,
    links: list[tuple[bytes, bytes, dict[str, Any]]] | None = None,
    events: list[tuple[str, dict[str, Any]]] | None = None,
    status_code: int = 0,
) -> Span:
    s = Span(
        trace_id=trace_id if trace_id is not None else os.urandom(16),
        span_id=span_id if span_id is not None else os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1e6),
        attributes=kvs(attrs or {}),
    )
    s.status.code = status_code
    for tid, sid, la in links or []:
        s.links.append(Span.Link(trace_id=tid, span_id=sid, attributes=kvs(la)))
    for ename, eattrs in events or []:
        s.events.append(Span.Event(time_unix_nano=start + 1, name=ename, attributes=kvs(eattrs)))
    return s


def request(*spans: Span, service: str = "svc") -> ExportTraceServiceRequest:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    rs.resource.attributes.extend(kvs({"service.name": service}))
    return ExportTraceServiceRequest(resource_spans=[rs])


def pair(
    experiment: str = "exp",
    primary_ms: float = 10.0,
    candidate_ms: float = 12.0,
    primary_hash: str = "aa",
    candidate_hash: str = "aa",
    candidate_outcome: str = "ok",
    primary_outcome: str = "ok",
    tokens: tuple[int, int, int, int] = (10, 20, 11, 30),
) -> tuple[Span, Span]:
    """A primary span and a candidate span linked to it, as the SDK emits them."""
    trace_id = os.urandom(16)
    p = span(
        experiment,
        {
            "shadow.experiment": experiment,
            "shadow.role": "primary",
            "shadow.config.id": "P",
            "shadow.outcome": primary_outcome,
            "shadow.output.hash": primary_hash,
            "shadow.candidates.scheduled": 1,
            "shadow.candidates.dropped": 0,
            "gen_ai.usage.input_tokens": tokens[0],
            "gen_ai.usage.output_tokens": tokens[1],
            "gen_ai.request.model": "m-primary",
        },
        trace_id=trace_id,
        duration_ms=primary_ms,
    )
    c = span(
        experiment,
        {
            "shadow.experiment": experiment,
            "shadow.role": "candidate",
            "shadow.config.id": "C",
            "shadow.outcome": candidate_outcome,
            "shadow.output.hash": candidate_hash,
            "gen_ai.usage.input_tokens": tokens[2],
            "gen_ai.usage.output_tokens": tokens[3],
            "gen_ai.request.model": "m-candidate",
        },
        trace_id=trace_id,
        parent=p.span_id,
        duration_ms=candidate_ms,
        links=[(trace_id, p.span_id, {"shadow.link": "primary"})],
    )
    return p, c
