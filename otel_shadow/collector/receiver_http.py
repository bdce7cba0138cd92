"""OTLP/HTTP (``POST /v1/traces``) plus the collector's own endpoints, as a Starlette app.

* ``/v1/traces``: ``application/x-protobuf`` or ``application/json``, optionally gzip; the size
  limit applies to the body *after* decompression (413); the answer uses the request's encoding.
* ``/v1/sql``: read-only SQL for ``otel-shadow sql`` / ``report`` (``sql_endpoint``: token, limits).
* ``/healthz`` (alive), ``/readyz`` (503 while commits fail or while shutting down), ``/metrics``.

Served by uvicorn (a real ASGI server); nothing here parses HTTP by hand.
"""

from __future__ import annotations

import zlib
from typing import Any

from google.protobuf import json_format
from google.rpc import code_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import PermanentError, RetryableError
from .pipeline import Pipeline
from .sql_endpoint import SqlEndpoint
from .status import error_body, export_response

__all__ = ["build_app"]

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, refusing anything over ``limit`` bytes before holding it."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise PermanentError(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    chunks: list[bytes] = []
    received = 0
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    produced = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _TooLarge
            if inflater is None:
                chunks.append(chunk)
                continue
            piece = inflater.decompress(chunk, limit + 1 - produced)
            produced += len(piece)
            if produced > limit or inflater.unconsumed_tail:
                raise _TooLarge
            chunks.append(piece)
        if inflater is not None:
            tail = inflater.flush()
            produced += len(tail)
            if produced > limit:
                raise _TooLarge
            chunks.append(tail)
            if not inflater.eof:
                raise PermanentError("gzip body is truncated")
    except zlib.error as exc:
        raise PermanentError(f"body is not valid gzip: {exc}") from exc
    return b"".join(chunks)


def build_app(
    pipeline: Pipeline, sql: SqlEndpoint | None, *, max_request_bytes: int, token: str | None, stats: Any
) -> Starlette:
    def authorized(request: Request) -> bool:
        return token is None or request.headers.get("authorization") == f"Bearer {token}"

    def error(status: int, code: int, message: str, encoding: str, retry_after: float | None = None) -> Response:
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
        media = _JSON if encoding == "json" else _PROTOBUF
        return Response(error_body(code, message, encoding), status_code=status, media_type=media, headers=headers)

    async def traces(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        encoding = "json" if content_type == _JSON else "protobuf"
        if not authorized(request):
            return error(401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token", encoding)
        if content_type not in (_PROTOBUF, _JSON):
            return error(415, code_pb2.INVALID_ARGUMENT, f"unsupported Content-Type {content_type!r}; use {_PROTOBUF} or {_JSON}", encoding)
        try:
            body = await _read_body(request, max_request_bytes)
        except _TooLarge:
            return error(413, code_pb2.RESOURCE_EXHAUSTED, f"request larger than {max_request_bytes} bytes (after decompression)", encoding)
        except PermanentError as exc:
            return error(400, code_pb2.INVALID_ARGUMENT, str(exc), encoding)
        source = "otlp-http-json" if encoding == "json" else "otlp-http-protobuf"
        try:
            result = await run_in_threadpool(pipeline.store, body, encoding, source)
        except PermanentError as exc:
            status = 413 if exc.too_large else 400
            return error(status, code_pb2.INVALID_ARGUMENT, str(exc), encoding)
        except RetryableError as exc:
            return error(503, code_pb2.UNAVAILABLE, str(exc), encoding, exc.retry_after)
        except TimeoutError:
            return error(503, code_pb2.UNAVAILABLE, "the store did not commit in time", encoding, 5.0)
        response = export_response(result)
        if encoding == "json":
            payload = json_format.MessageToJson(response, indent=None).encode() if result.rejected else b"{}"
            return Response(payload, media_type=_JSON)
        return Response(response.SerializeToString(), media_type=_PROTOBUF)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if pipeline.ready:
            return PlainTextResponse("ready")
        reason = "shutting down" if pipeline.stats.last_commit_error is None else f"commits failing: {pipeline.stats.last_commit_error}"
        return PlainTextResponse(f"not ready: {reason}", status_code=503)

    async def metrics(request: Request) -> Response:
        snapshot = stats()
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
