"""Read access to the store from the CLI: the file itself, or the collector that holds it.

DuckDB lets no other process open a file while one process writes it. A running collector
therefore publishes, beside the database, a small file ``<db>.collector.json`` naming its SQL
endpoint and the token it takes (the file is readable by the collector's OS user only); when the
database is locked, readers send their (read-only) SQL there instead. The protocol is plain JSON
over HTTP, so this module needs nothing from the collector's code. Both ways run the same checks
(``otel_shadow.store.readonly``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from .environment_variables import OTEL_SHADOW_COLLECTOR_TOKEN
from .errors import DatabaseLocked, QueryError, QueryTimeout, ReadOnlyQuery, ResultTooLarge, StoreError
from .store import QueryResult, Store, check_read_only

__all__ = ["Reader", "collector_info_path", "open_reader"]


class Reader(Protocol):
    def query(self, sql: str) -> QueryResult: ...

    def close(self) -> None: ...


def collector_info_path(db: str) -> Path:
    return Path(f"{db}.collector.json")


class LocalReader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.where = f"file {store.path}"

    def query(self, sql: str) -> QueryResult:
        return self.store.query(sql)

    def close(self) -> None:
        self.store.close()


class RemoteReader:
    """Sends read-only SQL to a collector's ``/v1/sql`` endpoint."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self.where = f"collector {url}"

    def query(self, sql: str) -> QueryResult:
        check_read_only(sql)  # refuse early, with the same message as locally
        body = json.dumps({"sql": sql}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc)
            if exc.code == 401:
                raise StoreError(
                    f"the collector at {self.url} refused the token; set {OTEL_SHADOW_COLLECTOR_TOKEN}"
                ) from exc
            if exc.code == 403:
                raise ReadOnlyQuery(detail) from exc
            if exc.code == 408:
                raise QueryTimeout(detail) from exc
            if exc.code == 413:
                raise ResultTooLarge(detail) from exc
            if exc.code == 503:
                raise StoreError(f"the collector at {self.url} is busy: {detail}") from exc
            raise QueryError(detail) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise StoreError(f"cannot reach the collector at {self.url}: {exc}") from exc
        return QueryResult(payload["columns"], [tuple(r) for r in payload["rows"]])

    def close(self) -> None:
        return None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error") or exc)
    except Exception:
        return str(exc)


def open_reader(
    db: str, token: str | None = None, *, segments: str | None = None, clickhouse: str | None = None
) -> Reader:
    """The file read-only when free; the collector holding it otherwise. With ``segments``, the
    Parquet segments in that folder instead, as one store (``store.segments``). With ``clickhouse``
    (a URL), that ClickHouse database: otel_traces with otel-shadow's views (``otel_shadow.clickhouse``)."""
    if clickhouse is not None:
        from .clickhouse import open_clickhouse

        return open_clickhouse(clickhouse)
    if segments is not None:
        from .store.segments import open_segments

        return LocalReader(open_segments(segments))
    try:
        return LocalReader(Store.open(db, read_only=True))
    except DatabaseLocked as locked:
        info_path = collector_info_path(db)
        if not info_path.exists():
            raise
        try:
            info = json.loads(info_path.read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"'{info_path}' is unreadable ({exc}); is the collector still running?") from exc
        if not _alive(pid):
            raise DatabaseLocked(
                f"'{info_path}' names collector process {pid}, which is no longer running (it was "
                f"killed; the file is stale and can be deleted). {locked}"
            ) from locked
        if not info.get("sql_url"):
            raise StoreError(
                f"the collector (process {pid}) holding '{db}' serves no SQL (started with --no-sql); "
                "stop it to read the file directly"
            ) from locked
        return RemoteReader(
            info["sql_url"], token or os.environ.get(OTEL_SHADOW_COLLECTOR_TOKEN) or info.get("sql_token")
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True
