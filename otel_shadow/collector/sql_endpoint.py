"""``POST /v1/sql``: read-only SQL over HTTP, for ``otel-shadow sql`` / ``report`` while the collector holds the file.

Anyone who can reach the port can send a request, so the endpoint grants as little as it can:

* **Always behind a token.** ``--token`` when one is set; otherwise a random token made for this
  run and written only into ``<db>.collector.json``, readable by the collector's own OS user (the
  local CLI finds it there). There is no tokenless mode.
* **Not callable from a web page** (CSRF, DNS rebinding): the body must be ``application/json``
  (a page cannot send that cross-origin without a preflight, which is refused), a foreign
  ``Origin`` is refused, and on a loopback address the ``Host`` must be a loopback name.
* **Safe SQL by construction** (``otel_shadow.store.readonly``): a sandboxed database instance, a
  READ ONLY transaction rolled back after every query, an allow-list of statement kinds.
* **Bounded**: the body in bytes, each query's run time, its result in bytes, and the number of
  queries at once (beyond it: 503 with Retry-After). Each query has a cursor of its own, so one
  slow query does not block the others; ``close()`` interrupts every running query (shutdown).
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import duckdb
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import QueryError, QueryTimeout, ReadOnlyQuery, ResultTooLarge, StoreError
from ..store import QueryResult, Store, json_value
from ..store.database import map_query_error
from ..store.readonly import QueryLimits, run_read_only

__all__ = ["SqlEndpoint", "SqlLimits"]

_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True, slots=True)
class SqlLimits:
    """The endpoint's bounds; each is a collector flag."""

    max_body_bytes: int = 1 * 2**20
    timeout_s: float = 30.0
    max_result_bytes: int = 64 * 2**20
    max_concurrency: int = 4


class SqlEndpoint:
    """The ``/v1/sql`` handler: authentication, request checks, one cursor per running query."""

    def __init__(self, store: Store, *, tokens: list[str], limits: SqlLimits, loopback_only: bool) -> None:
        if not tokens or not all(tokens):
            raise ValueError("the SQL endpoint needs at least one non-empty token")
        self._store = store
        self._tokens = [t.encode() for t in tokens]
        self._limits = limits
        self._query_limits = QueryLimits(
            max_sql_bytes=limits.max_body_bytes, timeout_s=limits.timeout_s, max_result_bytes=limits.max_result_bytes
        )
        self._loopback_only = loopback_only
        self._lock = threading.Lock()  # cursors are made one at a time; guards _running and _closed
        self._running: set[duckdb.DuckDBPyConnection] = set()
        self._closed = False

    # --- the HTTP side -----------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        refusal = self._refuse(request)
        if refusal is not None:
            return refusal
        try:
            text = await self._read_sql(request)
        except _BadRequest as exc:
            return _error(exc.status, str(exc))
        try:
            result = await run_in_threadpool(self.query, text)
        except _Busy as exc:
            return _error(503, str(exc), headers={"Retry-After": "1"})
        except ReadOnlyQuery as exc:
            return _error(403, str(exc))
        except ResultTooLarge as exc:
            return _error(413, str(exc))
        except QueryTimeout as exc:
            return _error(408, str(exc))
        except (QueryError, StoreError) as exc:
            return _error(400, str(exc))
        rows = [[json_value(v) for v in row] for row in result.rows]
        body = json.dumps({"columns": result.columns, "rows": rows}, default=str, allow_nan=False)
        return Response(body, media_type="application/json")

    def _refuse(self, request: Request) -> Response | None:
        """The checks that need no body: token, Origin, Host, Content-Type."""
        header = request.headers.get("authorization", "")
        offered = header[7:].encode() if header[:7].lower() == "bearer " else b""
        # compare against every token, always, in constant time
        if not any([hmac.compare_digest(offered, token) for token in self._tokens]):
            return _error(
                401, "missing or wrong bearer token (the collector's --token, or the one in <db>.collector.json)"
            )
        origin = request.headers.get("origin")
        if origin is not None and not _same_origin(origin, request):
            return _error(403, f"requests from web pages are refused (Origin {origin!r})")
        if self._loopback_only and _hostname(request.headers.get("host", "")) not in _LOOPBACK_NAMES:
            return _error(403, "this collector serves SQL on loopback only; use 127.0.0.1 or localhost")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, 'send Content-Type: application/json and a body {"sql": "SELECT …"}')
        return None

    async def _read_sql(self, request: Request) -> str:
        limit = self._limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _BadRequest(413, f"request body larger than {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _BadRequest(413, f"request body larger than {limit} bytes")
        try:
            data = json.loads(body)
            text = data["sql"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):
            raise _BadRequest(400, 'send {"sql": "SELECT …"}') from None
        return text

    # --- the database side -------------------------------------------------------------------
    def query(self, sql: str) -> QueryResult:
        """Run ``sql`` on a cursor of its own, within the limits (any thread)."""
        with self._lock:
            if self._closed:
                raise _Busy("the collector is shutting down")
            if len(self._running) >= self._limits.max_concurrency:
                raise _Busy(f"{self._limits.max_concurrency} queries are already running; retry shortly")
            try:
                cursor = self._store.con.cursor()
            except duckdb.Error as exc:
                raise map_query_error(exc) from exc
            self._running.add(cursor)
        try:
            columns, rows = run_read_only(cursor, sql, None, self._query_limits)
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc
        finally:
            with self._lock:
                self._running.discard(cursor)
            cursor.close()
        return QueryResult(columns, rows)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def close(self) -> None:
        """Refuse new queries and interrupt the running ones (they fail; their callers get an error)."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for cursor in running:
            try:
                cursor.interrupt()
            except duckdb.Error:
                pass


class _Busy(StoreError):
    pass


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(origin: str, request: Request) -> bool:
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc == request.headers.get("host", "") and parts.scheme == request.url.scheme
