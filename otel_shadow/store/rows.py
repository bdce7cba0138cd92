"""The one conversion from OTLP to rows: an ``ExportTraceServiceRequest`` becomes Arrow tables.

Everything that reaches the store comes through here: OTLP/protobuf and OTLP/JSON from the
collector, and the in-process exporter's spans (encoded to OTLP first by OpenTelemetry's own
encoder). So a span has the same row whichever way it arrived.

Attribute conversion is the known bottleneck (about 1 µs per attribute read through the protobuf
runtime's objects). The request is therefore parsed with ``wire``'s view, in which attribute lists
are raw bytes, and each distinct ``KeyValue`` is decoded once (``wire.decode_attributes``), giving
the dict (for promoted columns) and the JSON bag's text together. The loop binds every column's
``append`` once and leaves type checks of promoted columns to Arrow (coercing only when it refuses).

A span whose values do not fit its columns is rejected on its own (partial success), never the
request: a kind or status code OTLP does not define, a time beyond what a ``TIMESTAMP_NS`` holds,
more than 65,535 events or links, or a promoted integer (a token count, say) outside 64 bits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .. import attributes as A
from .wire import any_value, decode_attributes, parse_request
from .wire import dumps as _dumps

__all__ = ["Rows", "SPAN_SCHEMA", "request_to_rows"]

# promoted span attributes: (attribute key, column name, arrow type)
PROMOTED: tuple[tuple[str, str, pa.DataType], ...] = (
    (A.SHADOW_EXPERIMENT, "experiment", pa.string()),
    (A.SHADOW_ROLE, "role", pa.string()),
    (A.SHADOW_CONFIG_ID, "config_id", pa.string()),
    (A.SHADOW_OUTCOME, "outcome", pa.string()),
    (A.SHADOW_OUTPUT_HASH, "output_hash", pa.string()),
    (A.SHADOW_OUTPUT_LENGTH, "output_length", pa.int64()),
    (A.SHADOW_CANDIDATES_SCHEDULED, "candidates_scheduled", pa.int64()),
    (A.SHADOW_CANDIDATES_DROPPED, "candidates_dropped", pa.int64()),
    (A.SHADOW_DROP_REASONS, "drop_reasons", pa.string()),
    (A.GEN_AI_OPERATION_NAME, "gen_ai_operation_name", pa.string()),
    (A.GEN_AI_PROVIDER_NAME, "gen_ai_provider_name", pa.string()),
    (A.GEN_AI_REQUEST_MODEL, "gen_ai_request_model", pa.string()),
    (A.GEN_AI_RESPONSE_MODEL, "gen_ai_response_model", pa.string()),
    (A.GEN_AI_USAGE_INPUT_TOKENS, "gen_ai_usage_input_tokens", pa.int64()),
    (A.GEN_AI_USAGE_OUTPUT_TOKENS, "gen_ai_usage_output_tokens", pa.int64()),
)

SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),  # hex; cast to UUID in the INSERT
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("trace_state", pa.string()),
        ("flags", pa.uint32()),
        ("name", pa.string()),
        ("kind", pa.uint8()),
        ("start_time", pa.timestamp("ns")),
        ("end_time", pa.timestamp("ns")),
        ("status_code", pa.uint8()),
        ("status_message", pa.string()),
        ("service_name", pa.string()),
        ("scope_name", pa.string()),
        ("scope_version", pa.string()),
        *[(column, kind) for _, column, kind in PROMOTED],
        ("gen_ai_provider_fallback", pa.string()),  # deprecated gen_ai.system, merged in SQL
        ("attributes", pa.string()),
        ("resource_attributes", pa.string()),
        ("dropped_attributes_count", pa.uint32()),
        ("dropped_events_count", pa.uint32()),
        ("dropped_links_count", pa.uint32()),
    ]
)

LINK_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.uint64()),
        ("link_index", pa.uint16()),
        ("linked_trace_id", pa.string()),
        ("linked_span_id", pa.uint64()),
        ("link_type", pa.string()),  # the link's shadow.link attribute
        ("trace_state", pa.string()),
        ("flags", pa.uint32()),
        ("attributes", pa.string()),
    ]
)

EVENT_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.uint64()),
        ("event_index", pa.uint16()),
        ("time", pa.timestamp("ns")),
        ("name", pa.string()),
        ("attributes", pa.string()),
    ]
)


def attributes_dict(key_values: Iterable[Any]) -> dict[str, Any]:
    """Official OTLP ``KeyValue`` messages → dict; ints stay ints, floats floats, bools bools."""
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass(frozen=True, slots=True)
class Rows:
    """The Arrow tables for one request, and what was rejected (invalid spans) or skipped."""

    spans: pa.Table
    links: pa.Table
    events: pa.Table
    rejected: int
    errors: tuple[str, ...]
    received: int  # spans in the request, stored or not

    @property
    def span_count(self) -> int:
        return self.spans.num_rows

    @property
    def skipped(self) -> int:
        """Valid spans left out by ``shadow_only``."""
        return self.received - self.rejected - self.span_count


# OTLP defines SpanKind 0-5 and StatusCode 0-2; DuckDB's TIMESTAMP_NS ends one below 2^63 - 1
# (its "infinity"); link and event indexes are USMALLINT.
MAX_SPAN_KIND = 5
MAX_STATUS_CODE = 2
MAX_TIME_NS = 2**63 - 2
MAX_EVENTS = MAX_LINKS = 2**16 - 1
_INT64 = (-(2**63), 2**63 - 1)


class _OutOfRange(Exception):
    """A promoted integer attribute does not fit 64 bits (the spans are then checked one by one)."""


def request_to_rows(
    request: ExportTraceServiceRequest | bytes | bytearray | memoryview, *, shadow_only: bool = False
) -> Rows:
    """Convert one OTLP request (a message or its bytes). Invalid spans (bad id lengths, values
    out of range) are rejected, not fatal; malformed bytes raise ``google.protobuf.message.DecodeError``.

    ``shadow_only`` keeps spans that carry a ``shadow.*`` experiment attribute, plus GenAI spans
    (their token counts belong to the experiment that contains them) and the scores of
    ``otel-shadow score``; the rest are skipped (and not counted as rejected).
    """
    if not isinstance(request, bytes | bytearray | memoryview):
        request = request.SerializeToString()
    try:
        return _convert(request, shadow_only, check_promoted=False)
    except _OutOfRange:  # rare: convert again, rejecting the spans that carry such a value
        return _convert(request, shadow_only, check_promoted=True)


def _convert(request: bytes | bytearray | memoryview, shadow_only: bool, check_promoted: bool) -> Rows:
    wire = parse_request(request)
    cols: dict[str, list[Any]] = {name: [] for name in SPAN_SCHEMA.names}
    links: dict[str, list[Any]] = {name: [] for name in LINK_SCHEMA.names}
    events: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
    rejected = received = 0
    errors: list[str] = []
    span_attrs: list[dict[str, Any]] = []  # per stored span; promoted columns are read from these
    # every per-span column's append, bound once (this loop is the ingest hot path)
    (
        a_trace,
        a_span,
        a_parent,
        a_state,
        a_flags,
        a_name,
        a_kind,
        a_start,
        a_end,
        a_status,
        a_status_msg,
        a_dropped_attrs,
        a_dropped_events,
        a_dropped_links,
        a_json,
    ) = (
        cols[n].append
        for n in (
            "trace_id",
            "span_id",
            "parent_span_id",
            "trace_state",
            "flags",
            "name",
            "kind",
            "start_time",
            "end_time",
            "status_code",
            "status_message",
            "dropped_attributes_count",
            "dropped_events_count",
            "dropped_links_count",
            "attributes",
        )
    )
    a_attrs = span_attrs.append
    l_trace, l_span, l_index, l_linked_trace, l_linked_span, l_type, l_state, l_flags, l_attrs = (
        links[n].append
        for n in (
            "trace_id",
            "span_id",
            "link_index",
            "linked_trace_id",
            "linked_span_id",
            "link_type",
            "trace_state",
            "flags",
            "attributes",
        )
    )
    e_trace, e_span, e_index, e_time, e_name, e_attrs = (
        events[n].append for n in ("trace_id", "span_id", "event_index", "time", "name", "attributes")
    )
    link_key = A.SHADOW_LINK
    from_bytes = int.from_bytes
    decode = decode_attributes
    experiment_key, genai_key = A.SHADOW_EXPERIMENT, A.GEN_AI_OPERATION_NAME
    score_key = A.SHADOW_SCORE_SCORER_ID  # scores of `otel-shadow score` (views: shadow_scores)

    for resource_spans in wire.resource_spans:
        resource_attrs = attributes_dict(resource_spans.resource.attributes)
        service = resource_attrs.get(A.SERVICE_NAME)
        service = service if isinstance(service, str) else ""
        resource_json = _dumps(resource_attrs)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name or None
            scope_version = scope_spans.scope.version or None
            before = len(span_attrs)
            received += len(scope_spans.spans)
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                span_links = span.links
                span_events = span.events
                status = span.status
                if len(trace_id) != 16 or len(span_id) != 8 or trace_id == _ZERO_TRACE:
                    rejected += 1
                    if len(errors) < 5:
                        errors.append(
                            f"span {span.name!r}: trace_id must be 16 non-zero bytes and span_id 8 bytes "
                            f"(got {len(trace_id)} and {len(span_id)})"
                        )
                    continue
                kind = span.kind
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                status_code = status.code
                if (
                    kind > MAX_SPAN_KIND
                    or start > MAX_TIME_NS
                    or end > MAX_TIME_NS
                    or status_code > MAX_STATUS_CODE
                    or len(span_events) > MAX_EVENTS
                    or len(span_links) > MAX_LINKS
                ):
                    rejected += 1
                    if len(errors) < 5:
                        errors.append(f"span {span.name!r}: {_out_of_range(span)}")
                    continue
                attrs, attrs_json = decode(span.attributes)
                if shadow_only and experiment_key not in attrs and genai_key not in attrs and score_key not in attrs:
                    continue
                if check_promoted:
                    problem = _promoted_out_of_range(attrs)
                    if problem is not None:
                        rejected += 1
                        if len(errors) < 5:
                            errors.append(f"span {span.name!r}: {problem}")
                        continue
                trace_hex = trace_id.hex()
                span_int = from_bytes(span_id, "big")
                if span_events:  # first, so that an event's bad time rejects the span before it is added
                    for index, event in enumerate(span_events):
                        when = event.time_unix_nano
                        if when > MAX_TIME_NS:
                            break
                        e_trace(trace_hex)
                        e_span(span_int)
                        e_index(index)
                        e_time(when)
                        e_name(event.name)
                        e_attrs(decode(event.attributes)[1])
                    else:
                        index = -1
                    if index >= 0:
                        for event_column in events.values():
                            del event_column[len(event_column) - index :]
                        rejected += 1
                        if len(errors) < 5:
                            errors.append(f"span {span.name!r}: {_out_of_range(span)}")
                        continue
                parent = span.parent_span_id
                a_trace(trace_hex)
                a_span(span_int)
                a_parent(from_bytes(parent, "big") if len(parent) == 8 else None)
                a_state(span.trace_state or None)
                a_flags(span.flags)
                a_name(span.name)
                a_kind(kind)
                a_start(start)
                a_end(end)
                a_status(status_code)
                a_status_msg(status.message or None)
                a_attrs(attrs)
                a_json(attrs_json)
                a_dropped_attrs(span.dropped_attributes_count)
                a_dropped_events(span.dropped_events_count)
                a_dropped_links(span.dropped_links_count)
                if span_links:
                    for index, link in enumerate(span_links):
                        linked_trace, linked_span = link.trace_id, link.span_id
                        if len(linked_trace) != 16 or len(linked_span) != 8:
                            continue
                        link_attrs, link_json = decode(link.attributes)
                        l_trace(trace_hex)
                        l_span(span_int)
                        l_index(index)
                        l_linked_trace(linked_trace.hex())
                        l_linked_span(from_bytes(linked_span, "big"))
                        l_type(link_attrs.get(link_key))
                        l_state(link.trace_state or None)
                        l_flags(link.flags)
                        l_attrs(link_json)
            added = len(span_attrs) - before
            cols["service_name"] += [service] * added
            cols["scope_name"] += [scope_name] * added
            cols["scope_version"] += [scope_version] * added
            cols["resource_attributes"] += [resource_json] * added

    for key, column, _ in PROMOTED:
        cols[column] = [d.get(key) for d in span_attrs]
    system_key = A.GEN_AI_SYSTEM
    cols["gen_ai_provider_fallback"] = [d.get(system_key) for d in span_attrs]

    return Rows(
        spans=_table(cols, SPAN_SCHEMA),
        links=_table(links, LINK_SCHEMA),
        events=pa.table(events, schema=EVENT_SCHEMA),
        rejected=rejected,
        errors=tuple(errors),
        received=received,
    )


_ZERO_TRACE = b"\0" * 16


def _out_of_range(span: Any) -> str:
    """Why a span failed the range checks of the conversion loop, naming the field and the limit."""
    if span.kind > MAX_SPAN_KIND:
        return f"kind {span.kind} is not an OTLP SpanKind (0-{MAX_SPAN_KIND})"
    if span.status.code > MAX_STATUS_CODE:
        return f"status.code {span.status.code} is not an OTLP StatusCode (0-{MAX_STATUS_CODE})"
    for field in ("start_time_unix_nano", "end_time_unix_nano"):
        if getattr(span, field) > MAX_TIME_NS:
            return f"{field} {getattr(span, field)} is past the largest storable time ({MAX_TIME_NS}, year 2262)"
    if len(span.events) > MAX_EVENTS or len(span.links) > MAX_LINKS:
        return f"{len(span.events)} events and {len(span.links)} links; at most {MAX_EVENTS} of each are stored"
    return f"an event's time_unix_nano is past the largest storable time ({MAX_TIME_NS}, year 2262)"


def _promoted_out_of_range(attrs: dict[str, Any]) -> str | None:
    for key, _, kind in PROMOTED:
        value = attrs.get(key)
        if kind == pa.int64() and value is not None and type(value) is not int:
            try:
                _to_int(value)
            except _OutOfRange:
                return f"attribute {key} = {str(value)[:40]} is outside the 64-bit integer range of its column"
    return None


def _coerce(values: list[Any], kind: pa.DataType) -> list[Any]:
    """Values of the wrong type for a promoted column become NULL (the JSON bag keeps the original);
    a number that does not fit 64 bits raises ``_OutOfRange`` (its span is rejected instead)."""
    if kind == pa.int64():
        return [v if type(v) is int and _INT64[0] <= v <= _INT64[1] else _to_int(v) for v in values]
    return [v if isinstance(v, str) or v is None else str(v) for v in values]


def _to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):  # not a number (or a string of over 4,300 digits)
        return None
    except OverflowError as exc:  # an infinity
        raise _OutOfRange from exc
    if not _INT64[0] <= number <= _INT64[1]:
        raise _OutOfRange
    return number


def _table(cols: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """Build the table; on a type clash (a client sent a string token count, say) coerce and retry."""
    try:
        return pa.table(cols, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        fixed = dict(cols)
        for field in schema:
            if field.type in (pa.int64(), pa.string()) and field.name in fixed:
                fixed[field.name] = _coerce(fixed[field.name], field.type)
        return pa.table(fixed, schema=schema)
