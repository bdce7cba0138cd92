"""Prepared OTLP requests for the store and collector benchmarks (and tests).

1000 spans × 15 attributes (8 strings, 4 ints, 2 doubles, 1 bool), one event each, a link on every
other span, the shape the research measured: half primaries, half candidates linked to them.
"""

from __future__ import annotations

import os
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def make_request(n_spans: int = 1000, seed: int | None = None, experiment: str = "bench") -> ExportTraceServiceRequest:
    rng = random.Random(seed)
    spans = []
    base = 1_700_000_000_000_000_000 + rng.randrange(10**12)
    primary = None
    for i in range(n_spans):
        trace_id = os.urandom(16) if i % 2 == 0 else primary.trace_id  # type: ignore[union-attr]
        role = "primary" if i % 2 == 0 else "candidate"
        start = base + i * 1_000_000
        duration = rng.randrange(50_000_000, 900_000_000)
        span = Span(
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_span_id=(primary.span_id if role == "candidate" else b""),  # type: ignore[union-attr]
            name=experiment,
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start,
            end_time_unix_nano=start + duration,
            attributes=[
                _kv("shadow.experiment", experiment),
                _kv("shadow.role", role),
                _kv("shadow.config.id", "cfg-primary" if role == "primary" else "cfg-candidate"),
                _kv("shadow.outcome", "ok" if rng.random() > 0.02 else "error"),
                _kv("shadow.output.hash", f"{rng.getrandbits(64):016x}"),
                _kv("shadow.config.model", "gpt-4" if role == "primary" else "gpt-5-beta"),
                _kv("gen_ai.request.model", "gpt-4" if role == "primary" else "gpt-5-beta"),
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.usage.input_tokens", rng.randrange(10, 500)),
                _kv("gen_ai.usage.output_tokens", rng.randrange(10, 800)),
                _kv("shadow.output.length", rng.randrange(10, 2000)),
                _kv("http.status_code", 200),
                _kv("shadow.config.temperature", 0.5),
                _kv("sampling.ratio", 0.25),
                _kv("shadow.sampled", True),
            ],
            events=[Span.Event(time_unix_nano=start + 1000, name="first_chunk", attributes=[_kv("chunk", 1)])],
        )
        if role == "candidate":
            span.links.append(
                Span.Link(
                    trace_id=primary.trace_id,  # type: ignore[union-attr]
                    span_id=primary.span_id,  # type: ignore[union-attr]
                    attributes=[_kv("shadow.link", "primary")],
                )
            )
        else:
            primary = span
        spans.append(span)
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(_kv("service.name", "bench-service"))
    resource.scope_spans[0].scope.name = "otel_shadow"
    return ExportTraceServiceRequest(resource_spans=[resource])
