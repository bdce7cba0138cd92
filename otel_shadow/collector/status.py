"""How the collector answers, in one place, for both receivers, per the OTLP specification.

opentelemetry-proto docs/specification.md, "Failures" and "Throttling". Every answer is an
``Outcome``; ``ANSWERS`` gives its gRPC status and its HTTP status, and the code in an HTTP error
body is the gRPC code's number, so the two transports cannot disagree:

| outcome           | gRPC                                | HTTP                          | retry? |
|-------------------|-------------------------------------|-------------------------------|--------|
| STORED            | OK (+ partial_success)              | 200 (+ partial_success)       | no     |
| MALFORMED         | INVALID_ARGUMENT                    | 400                           | no     |
| UNSUPPORTED_MEDIA | INVALID_ARGUMENT                    | 415                           | no     |
| TOO_LARGE         | RESOURCE_EXHAUSTED, no RetryInfo    | 413                           | no     |
| OVERLOADED        | UNAVAILABLE + RetryInfo             | 503 + Retry-After             | yes    |
| UNAUTHENTICATED   | UNAUTHENTICATED                     | 401                           | no     |
| INTERNAL          | INTERNAL                            | 500                           | no     |

OVERLOADED covers capacity (bytes in flight), storage trouble and shutdown. INTERNAL is a bug in the
collector, logged with its traceback; what a client sent is never INTERNAL. Error bodies are a
``google.rpc.Status`` in the request's encoding (protobuf or JSON).
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..errors import PermanentError, RetryableError
from ..store import WriteResult

__all__ = [
    "ANSWERS",
    "Answer",
    "Outcome",
    "RETRY_INFO_KEY",
    "Refusal",
    "STATUS_DETAILS_KEY",
    "export_response",
    "grpc_trailers",
    "http_error",
    "refusal_of",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"  # the standard rich-status trailer
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"  # what OpenTelemetry's Python exporter reads


class Outcome(enum.Enum):
    STORED = "stored"
    MALFORMED = "malformed"
    UNSUPPORTED_MEDIA = "unsupported media type"
    TOO_LARGE = "too large"
    OVERLOADED = "overloaded"
    UNAUTHENTICATED = "unauthenticated"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Answer:
    grpc: grpc.StatusCode
    http: int

    @property
    def code(self) -> int:
        """The ``google.rpc.Code`` in an HTTP error body: the gRPC status's own number."""
        return int(self.grpc.value[0])

    @property
    def retryable(self) -> bool:
        return self.grpc is grpc.StatusCode.UNAVAILABLE


ANSWERS: dict[Outcome, Answer] = {
    Outcome.STORED: Answer(grpc.StatusCode.OK, 200),
    Outcome.MALFORMED: Answer(grpc.StatusCode.INVALID_ARGUMENT, 400),
    Outcome.UNSUPPORTED_MEDIA: Answer(grpc.StatusCode.INVALID_ARGUMENT, 415),
    Outcome.TOO_LARGE: Answer(grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    Outcome.OVERLOADED: Answer(grpc.StatusCode.UNAVAILABLE, 503),
    Outcome.UNAUTHENTICATED: Answer(grpc.StatusCode.UNAUTHENTICATED, 401),
    Outcome.INTERNAL: Answer(grpc.StatusCode.INTERNAL, 500),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request that is not stored: why (``outcome``), a message for the client, and, when it
    may be retried, after how many seconds."""

    outcome: Outcome
    message: str
    retry_after: float | None = None

    @property
    def answer(self) -> Answer:
        return ANSWERS[self.outcome]


def refusal_of(exc: BaseException) -> Refusal:
    """The refusal for an exception raised while admitting, decoding or committing a request."""
    if isinstance(exc, PermanentError):
        return Refusal(Outcome.TOO_LARGE if exc.too_large else Outcome.MALFORMED, str(exc))
    if isinstance(exc, RetryableError):
        return Refusal(Outcome.OVERLOADED, str(exc), exc.retry_after)
    if isinstance(exc, TimeoutError):
        return Refusal(Outcome.OVERLOADED, "the store did not commit in time", 5.0)
    return Refusal(Outcome.INTERNAL, f"internal error in the collector ({type(exc).__name__}); it is logged")


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


def _status(refusal: Refusal) -> status_pb2.Status:
    status = status_pb2.Status(code=refusal.answer.code, message=refusal.message)
    if refusal.retry_after is not None:
        detail = any_pb2.Any()
        detail.Pack(retry_info(refusal.retry_after))
        status.details.append(detail)
    return status


def http_error(refusal: Refusal, encoding: str) -> tuple[int, bytes, dict[str, str]]:
    """HTTP status, body (a google.rpc.Status in the request's encoding) and headers of a refusal."""
    headers = {}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(refusal.retry_after)))
    if encoding == "json":
        body = json.dumps({"code": refusal.answer.code, "message": refusal.message}).encode()
    else:
        body = status_pb2.Status(code=refusal.answer.code, message=refusal.message).SerializeToString()
    return refusal.answer.http, body, headers


def grpc_trailers(refusal: Refusal) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata of a gRPC refusal: the rich status and, when retryable, its RetryInfo."""
    if refusal.retry_after is None:
        return ()
    return (
        (STATUS_DETAILS_KEY, _status(refusal).SerializeToString()),
        (RETRY_INFO_KEY, retry_info(refusal.retry_after).SerializeToString()),
    )
