"""OTLP/JSON → ``ExportTraceServiceRequest``, following the OTLP specification, not proto3 JSON.

The differences that matter (opentelemetry-proto, docs/specification.md, "JSON Protobuf Encoding"):

* ``traceId``, ``spanId``, ``parentSpanId`` (and a link's ids) are case-insensitive **hex**; the
  protobuf library's JSON parser reads bytes fields as base64, which silently turns a 32-character
  trace id into 24 garbage bytes. They are converted to base64 before parsing.
* 64-bit integers arrive as decimal strings (numbers are accepted too); enums as integers.
* Keys are lowerCamelCase; unknown fields MUST be ignored.

Whatever JSON cannot hold as OTLP is ``InvalidOTLP`` (400), including integers longer than Python
converts (4,300 digits) and nesting deeper than the interpreter's recursion limit.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["InvalidOTLP", "parse_otlp_json"]


class InvalidOTLP(ValueError):
    """The request body cannot be decoded as OTLP (answered 400 / INVALID_ARGUMENT)."""


_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _hex_to_b64(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidOTLP(f"{where} must be a hex string, got {type(value).__name__}")
    try:
        raw = binascii.unhexlify(value) if value else b""
    except (binascii.Error, ValueError) as exc:
        raise InvalidOTLP(f"{where} is not valid hex: {value[:40]!r}") from exc
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(obj: dict[str, Any], where: str) -> None:
    for key in _ID_KEYS:
        if key in obj:
            obj[key] = _hex_to_b64(obj[key], f"{where}.{key}")


def _list(obj: Any, key: str, where: str) -> list[Any]:
    value = obj.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidOTLP(f"{where}.{key} must be an array")
    return value


def parse_otlp_json(body: bytes) -> ExportTraceServiceRequest:
    """Decode an OTLP/JSON body; raise ``InvalidOTLP`` with a readable reason when it is not one."""
    try:
        data = json.loads(body)
    except RecursionError as exc:
        raise InvalidOTLP("body is not valid OTLP JSON: nested too deeply") from exc
    except ValueError as exc:  # bad syntax, bad UTF-8, an integer of over 4,300 digits
        raise InvalidOTLP(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidOTLP("body must be a JSON object with a resourceSpans array")
    for i, rs in enumerate(_list(data, "resourceSpans", "")):
        if not isinstance(rs, dict):
            raise InvalidOTLP(f"resourceSpans[{i}] must be an object")
        for j, ss in enumerate(_list(rs, "scopeSpans", f"resourceSpans[{i}]")):
            if not isinstance(ss, dict):
                raise InvalidOTLP(f"resourceSpans[{i}].scopeSpans[{j}] must be an object")
            for k, span in enumerate(_list(ss, "spans", f"resourceSpans[{i}].scopeSpans[{j}]")):
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                if not isinstance(span, dict):
                    raise InvalidOTLP(f"{where} must be an object")
                _fix_ids(span, where)
                for n, link in enumerate(_list(span, "links", where)):
                    if not isinstance(link, dict):
                        raise InvalidOTLP(f"{where}.links[{n}] must be an object")
                    _fix_ids(link, f"{where}.links[{n}]")
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except RecursionError as exc:
        raise InvalidOTLP("not an OTLP trace request: nested too deeply") from exc
    except (json_format.ParseError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidOTLP(f"not an OTLP trace request: {exc}") from exc
    return request
