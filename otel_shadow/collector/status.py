"""How the collector answers, in one place, per the OTLP specification.

opentelemetry-proto docs/specification.md, "Failures" and "Throttling":

| situation                        | gRPC                                  | HTTP                               |
|----------------------------------|---------------------------------------|------------------------------------|
| stored (maybe some spans invalid)| OK (+ partial_success)                | 200 (+ partial_success)            |
| malformed request                | INVALID_ARGUMENT (not retryable)      | 400, google.rpc.Status body        |
| larger than the limit            | RESOURCE_EXHAUSTED, no RetryInfo      | 413                                |
| overload / storage / shutdown    | UNAVAILABLE + RetryInfo (retryable)   | 503 + Retry-After (retryable)      |
| bad or missing token             | UNAUTHENTICATED                       | 401                                |

Error bodies are a ``google.rpc.Status`` in the request's encoding (protobuf or JSON).
"""

from __future__ import annotations

import json
import math

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..store import WriteResult

__all__ = ["error_body", "export_response", "retry_info_status", "RETRY_INFO_KEY", "STATUS_DETAILS_KEY"]

STATUS_DETAILS_KEY = "grpc-status-details-bin"  # the standard rich-status trailer
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"  # what OpenTelemetry's Python exporter reads


def export_response(result: WriteResult) -> ExportTraceServiceResponse:
    """Success, with partial success when some spans were invalid (the client must not retry them)."""
    response = ExportTraceServiceResponse()
    if result.rejected:
        response.partial_success.rejected_spans = result.rejected
        response.partial_success.error_message = "; ".join(result.errors)[:4096] or "invalid spans rejected"
    return response


def retry_info(retry_after: float) -> error_details_pb2.RetryInfo:
    seconds = math.floor(retry_after)
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=seconds, nanos=int((retry_after - seconds) * 1e9))
    )


def retry_info_status(message: str, retry_after: float) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(retry_info(retry_after))
    return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])


def error_body(code: int, message: str, encoding: str) -> bytes:
    """A google.rpc.Status in the request's encoding."""
    if encoding == "json":
        return json.dumps({"code": code, "message": message}).encode()
    return status_pb2.Status(code=code, message=message).SerializeToString()
