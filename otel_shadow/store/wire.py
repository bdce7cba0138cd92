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
``DecodeError`` like a malformed request does.

The cache is bounded in bytes, because its keys come from the network: a ``KeyValue`` larger than
``CACHE_ENTRY_MAX_BYTES`` is decoded every time and never kept (large values rarely repeat, and one
of them could be megabytes), and the cache is cleared all at once when the bytes it holds would
pass ``CACHE_MAX_BYTES``. So it holds at most ``CACHE_MAX_BYTES`` per process, whatever arrives.

NaN and the infinities are not JSON; the attribute JSON stores them as the strings proto3's JSON
mapping uses (``"NaN"``, ``"Infinity"``, ``"-Infinity"``), so every JSON reader can parse the column.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "CACHE_ENTRY_MAX_BYTES",
    "CACHE_MAX_BYTES",
    "DecodeError",
    "WireRequest",
    "any_value",
    "cache_bytes",
    "clear_cache",
    "decode_attributes",
    "dumps",
    "parse_request",
]

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
                    field.type_name = f".{_PACKAGE}.{field.type_name[len(package) :]}"
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


def parse_request(payload: bytes | bytearray | memoryview) -> Any:
    """Parse an ``ExportTraceServiceRequest``'s bytes into the view (raises ``DecodeError``)."""
    request = WireRequest()
    # the stubs say bytes; the parser reads any buffer, and a memoryview spares the copy
    request.ParseFromString(payload)  # type: ignore[arg-type]
    return request


# ---- attributes ------------------------------------------------------------------------------

CACHE_ENTRY_MAX_BYTES = 4096  # a larger KeyValue is decoded each time, never kept
CACHE_MAX_BYTES = 16 * 2**20  # what the cache may hold per process (see _cost); cleared when full
# KeyValue bytes -> (key, value, JSON member text `"key":value`)
_cache: dict[bytes, tuple[str, Any, str | None]] = {}
_cached_bytes = 0
_cache_lock = threading.Lock()
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

    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False)
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    encode: Callable[[Any], str] = encoder.encode
    if c_make_encoder is not None:  # CPython always has it
        iterencode = c_make_encoder(
            None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
        )
        join = "".join

        def encode(obj: Any) -> str:
            return join(iterencode(obj, 0))

    def dumps(obj: Any) -> str:
        try:
            return encode(obj)
        except ValueError:  # NaN or an infinity somewhere: the rare path
            return encode(_finite(obj))

    return dumps


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by proto3 JSON's strings for them."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


dumps = _make_dumps()


def _decode_one(raw: bytes) -> tuple[str, Any, str | None]:
    kv = _KeyValue.FromString(raw)  # DecodeError for malformed bytes (or invalid UTF-8)
    value = kv.value
    which = value.WhichOneof("value")
    python = None if which is None else (any_value(value) if which in _NESTED else getattr(value, which))
    key = kv.key
    del kv, value
    if len(raw) > CACHE_ENTRY_MAX_BYTES:  # no member text: the attribute list is encoded whole, once
        return (key, python, None)
    item = (key, python, dumps({key: python})[1:-1])
    _remember(raw, item)
    return item


def _cost(raw: bytes, item: tuple[str, Any, str | None]) -> int:
    """Bytes one cache entry holds: its key bytes, the decoded key, value and JSON text, and the
    dict slot and tuple. A nested value (array, kvlist) is charged 8× its wire size, more than its
    Python objects take."""
    key, value, text = item
    if isinstance(value, str | bytes):
        held = sys.getsizeof(value)
    elif value is None or isinstance(value, bool | int | float):
        held = 32
    else:
        held = 8 * len(raw)
    return sys.getsizeof(raw) + sys.getsizeof(key) + sys.getsizeof(text) + held + 200


def _remember(raw: bytes, item: tuple[str, Any, str | None]) -> None:
    global _cached_bytes
    cost = _cost(raw, item)
    with _cache_lock:  # receivers' threads decode concurrently; the count must not drift
        if _cached_bytes + cost > CACHE_MAX_BYTES:
            _cache.clear()
            _cached_bytes = 0
        _cache[raw] = item
        _cached_bytes += cost


def cache_bytes() -> int:
    """What the attribute cache holds now, in bytes (as ``_cost`` counts them)."""
    return _cached_bytes


def clear_cache() -> None:
    global _cached_bytes
    with _cache_lock:
        _cache.clear()
        _cached_bytes = 0


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
    try:
        return values, "{" + ",".join([item[2] for item in items]) + "}"  # type: ignore[misc]
    except TypeError:  # a large value has no member text (see _decode_one)
        del items
        return values, dumps(values)
