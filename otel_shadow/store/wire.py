"""A wire-compatible view of OTLP trace requests in which every attribute list stays raw bytes.

Why: with the protobuf runtime (upb), reading a decoded attribute costs about 1 µs in Python (one
wrapper object for the ``KeyValue``, one for its ``AnyValue``, ``WhichOneof``, ``getattr``), and
a span has 15 of them. But attributes repeat: the experiment, role, config id, model and operation
are the same bytes on thousands of spans. So this module parses requests with a *view* of the OTLP
schema in which each ``repeated KeyValue attributes`` field is declared ``repeated bytes`` (the
same wire type: an embedded message and a bytes field are both length-delimited), and decodes each
distinct ``KeyValue`` once, with the official ``KeyValue`` class, into a cache keyed by its bytes.

Everything else (ids, times, names, status, resource, scope) is read from the view exactly as from
the official classes. Malformed attribute bytes are found when first decoded and raise
``DecodeError`` like a malformed request does. The cache is bounded (cleared when full).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["DecodeError", "WireRequest", "any_value", "decode_attributes", "dumps", "parse_request"]

_PACKAGE = "otel_shadow.wire.v1"
_KEY_VALUE = ".opentelemetry.proto.common.v1.KeyValue"
_OTLP_PACKAGES = (".opentelemetry.proto.collector.trace.v1.", ".opentelemetry.proto.trace.v1.")


def _build_request_class() -> type[Message]:
    """The official descriptors, copied into a private pool, with attribute lists as bytes."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    view = descriptor_pb2.FileDescriptorProto(
        name="otel_shadow/wire.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[common_pb2.DESCRIPTOR.name, resource_pb2.DESCRIPTOR.name],
    )

    def retarget(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            if field.type_name == _KEY_VALUE:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                field.ClearField("type_name")
                continue
            for package in _OTLP_PACKAGES:  # trace messages point into the view, not the originals
                if field.type_name.startswith(package):
                    field.type_name = f".{_PACKAGE}.{field.type_name[len(package):]}"
        for nested in message.nested_type:
            retarget(nested)

    for official in (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_pb2.ResourceSpans,
        trace_pb2.ScopeSpans,
        trace_pb2.Span,
        trace_pb2.Status,
    ):
        message = view.message_type.add()
        official.DESCRIPTOR.CopyToProto(message)
        retarget(message)
    pool.Add(view)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ExportTraceServiceRequest"))


WireRequest = _build_request_class()


def parse_request(payload: bytes) -> Any:
    """Parse an ``ExportTraceServiceRequest``'s bytes into the view (raises ``DecodeError``)."""
    request = WireRequest()
    request.ParseFromString(payload)
    return request


# ---- attributes ------------------------------------------------------------------------------

_CACHE_LIMIT = 1 << 16  # distinct KeyValues kept (a few MiB); cleared all at once when full
# KeyValue bytes -> (key, value, JSON member text `"key":value`)
_cache: dict[bytes, tuple[str, Any, str]] = {}
_KeyValue = common_pb2.KeyValue
_NESTED = frozenset({"array_value", "kvlist_value", "bytes_value"})


def any_value(value: Any) -> Any:
    """Python value of an official OTLP ``AnyValue`` (scalars, arrays, kvlists, bytes as hex)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def _make_dumps() -> Any:
    """``json.dumps`` without its two Python frames: the C encoder called directly when present."""
    import json

    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        return encoder.encode
    iterencode = c_make_encoder(
        None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    join = "".join

    def dumps(obj: Any) -> str:
        return join(iterencode(obj, 0))

    return dumps


dumps = _make_dumps()


def _decode_one(raw: bytes) -> tuple[str, Any, str]:
    kv = _KeyValue.FromString(raw)  # DecodeError for malformed bytes (or invalid UTF-8)
    value = kv.value
    which = value.WhichOneof("value")
    python = None if which is None else (any_value(value) if which in _NESTED else getattr(value, which))
    key = kv.key
    item = (key, python, dumps({key: python})[1:-1])
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[raw] = item
    return item


def decode_attributes(raw_list: Any) -> tuple[dict[str, Any], str]:
    """A view's attribute list (raw ``KeyValue`` bytes) → (dict, JSON object text).

    Types are kept (ints stay ints, floats floats, bools bools; bytes become hex). When a key
    repeats, the last value wins in both, as ``json.dumps`` of the dict would have it.
    """
    get = _cache.get
    items = [get(raw) or _decode_one(raw) for raw in raw_list]
    values = {item[0]: item[1] for item in items}
    if len(values) != len(items):  # a repeated key: encode the dict itself
        return values, dumps(values)
    return values, "{" + ",".join([item[2] for item in items]) + "}"
