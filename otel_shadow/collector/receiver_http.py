"""OTLP/HTTP (``POST /v1/traces``) plus the collector's own endpoints, as a Starlette app.

* ``/v1/traces``: ``application/x-protobuf`` or ``application/json``, optionally gzip; the size
  limit applies to the body *after* decompression (413); the answer uses the request's encoding
  (``status``: one table for both receivers). A body's bytes are held in flight before they are
  kept: its Content-Length at once when it declares one and is not compressed, else chunk by chunk
  as it is read, so bodies never pile up past the pipeline's in-flight limit (503 + Retry-After).
* ``/v1/sql``: read-only SQL for ``otel-shadow sql`` / ``report`` (``sql_endpoint``: token, limits).
* ``/healthz`` (503 when a restart is needed), ``/readyz`` (503 while it cannot commit or is shutting down), ``/metrics``
  (numbers only, so no message or file path leaves through it; it needs the token when one is set).

Served by uvicorn (a real ASGI server); nothing here parses HTTP by hand.
"""

from __future__ import annotations

import hmac
import logging
import zlib
from typing import Any, cast

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import PermanentError
from .pipeline import Pipeline
from .sql_endpoint import SqlEndpoint
from .status import Outcome, Refusal, export_response, http_error, refusal_of

__all__ = ["build_app"]

logger = logging.getLogger("otel_shadow.collector")

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


class _TooLarge(Exception):
    pass


class _Held:
    """The bytes one request holds in the pipeline's in-flight count while its body is read."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.bytes = 0

    def add(self, more: int) -> None:
        """Hold ``more`` bytes before keeping them (``RetryableError`` when that would pass the limit)."""
        if more > 0:
            self.pipeline.grow(self.bytes, more)
            self.bytes += more

    def exactly(self, size: int) -> None:
        if size > self.bytes:
            self.add(size - self.bytes)
        elif size < self.bytes:
            self.pipeline.release(self.bytes - size)
            self.bytes = size

    def hand_over(self) -> None:
        """The pipeline owns the bytes from now on (it releases them after the commit)."""
        self.bytes = 0

    def release(self) -> None:
        if self.bytes:
            self.pipeline.release(self.bytes)
            self.bytes = 0


async def _read_body(request: Request, limit: int, held: _Held) -> bytearray:
    """The request body, decompressed, refusing anything over ``limit`` bytes before holding it,
    and holding every byte in flight (``held``) before it is kept."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise PermanentError(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise PermanentError(f"Content-Length {declared[:40]!r} is not a number of bytes")
        if int(declared) > limit:
            raise _TooLarge
        if inflater is None:
            held.add(int(declared))
    body = bytearray()
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _TooLarge
            if inflater is None:
                held.add(received - held.bytes)
                body += chunk
                continue
            piece = inflater.decompress(chunk, limit + 1 - len(body))
            if len(body) + len(piece) > limit or inflater.unconsumed_tail:
                raise _TooLarge
            held.add(len(piece))
            body += piece
        if inflater is not None:
            tail = inflater.flush()
            if len(body) + len(tail) > limit:
                raise _TooLarge
            held.add(len(tail))
            body += tail
            if not inflater.eof:
                raise PermanentError("gzip body is truncated")
    except zlib.error as exc:
        raise PermanentError(f"body is not valid gzip: {exc}") from exc
    return body


def build_app(
    pipeline: Pipeline, sql: SqlEndpoint | None, *, max_request_bytes: int, token: str | None, stats: Any
) -> Starlette:
    expected = f"Bearer {token}".encode() if token is not None else b""

    def authorized(request: Request) -> bool:
        offered = request.headers.get("authorization", "").encode("latin-1", "replace")
        return token is None or hmac.compare_digest(offered, expected)

    def error(refusal: Refusal, encoding: str) -> Response:
        status, body, headers = http_error(refusal, encoding)
        return Response(
            body, status_code=status, media_type=_JSON if encoding == "json" else _PROTOBUF, headers=headers
        )

    async def traces(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        encoding = "json" if content_type == _JSON else "protobuf"
        if not authorized(request):
            return error(Refusal(Outcome.UNAUTHENTICATED, "missing or wrong bearer token"), encoding)
        if content_type not in (_PROTOBUF, _JSON):
            message = f"unsupported Content-Type {content_type!r}; use {_PROTOBUF} or {_JSON}"
            return error(Refusal(Outcome.UNSUPPORTED_MEDIA, message), encoding)
        source = "otlp-http-json" if encoding == "json" else "otlp-http-protobuf"
        held = _Held(pipeline)
        try:
            pipeline.admit(0)  # counts the request; refuses at once when full or shutting down
            body = await _read_body(request, max_request_bytes, held)
            held.exactly(len(body))
            held.hand_over()
            # a bytearray, not copied into bytes: everything downstream (hashing, protobuf, json,
            # pickling to a decode worker) takes any bytes-like object
            result = await run_in_threadpool(pipeline.store, cast(bytes, body), encoding, source, admitted=True)
        except _TooLarge:
            too_large = f"request larger than {max_request_bytes} bytes (after decompression)"
            return error(Refusal(Outcome.TOO_LARGE, too_large), encoding)
        except ClientDisconnect:
            return error(Refusal(Outcome.MALFORMED, "the client disconnected before sending the whole body"), encoding)
        except Exception as exc:
            refusal = refusal_of(exc)
            if refusal.outcome is Outcome.INTERNAL:
                logger.exception("OTLP/HTTP request failed inside the collector")
            return error(refusal, encoding)
        finally:
            held.release()
        response = export_response(result)
        if encoding == "json":
            payload = json_format.MessageToJson(response, indent=None).encode() if result.rejected else b"{}"
            return Response(payload, media_type=_JSON)
        return Response(response.SerializeToString(), media_type=_PROTOBUF)

    async def healthz(request: Request) -> Response:
        problem = pipeline.health()
        if problem is None:
            return PlainTextResponse("ok")
        return PlainTextResponse(f"unhealthy: {problem}", status_code=503)

    async def readyz(request: Request) -> Response:
        reason = pipeline.readiness()
        if reason is None:
            return PlainTextResponse("ready")
        return PlainTextResponse(f"not ready: {reason}", status_code=503)

    async def metrics(request: Request) -> Response:
        if not authorized(request):
            return PlainTextResponse("missing or wrong bearer token", status_code=401)
        # numbers only: messages (a commit error, say) name files and say more than a dashboard needs
        snapshot = {k: v for k, v in stats().items() if v is None or isinstance(v, bool | int | float)}
        if "application/json" in request.headers.get("accept", "") or request.query_params.get("format") == "json":
            return JSONResponse(snapshot)
        lines = []
        for key, value in snapshot.items():
            if isinstance(value, bool):
                value = int(value)
            if isinstance(value, int | float):
                lines.append(f"otel_shadow_collector_{key} {value}")
        return PlainTextResponse("\n".join(lines) + "\n")

    routes = [
        Route("/v1/traces", traces, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if sql is not None:
        routes.append(Route("/v1/sql", sql.handle, methods=["POST"]))
    return Starlette(routes=routes)
