"""Read-only connections to ClickHouse: a server through clickhouse-connect, or chdb in-process.

``open_clickhouse(url)`` takes

- ``http://user:password@host:8123/database`` or ``https://…`` — a ClickHouse server, through
  clickhouse-connect (``pip install 'otel-shadow[clickhouse]'``);
- ``chdb:/path/to/folder?database=otel`` — ClickHouse embedded in this process (``pip install chdb``),
  over a folder chdb keeps its tables in.

Both run each query with ``readonly=1`` (the server refuses any write, any DDL and any change of
settings, whatever the SQL), a time limit and a result limit in rows and bytes that the server
enforces; the SQL is also checked up front to be a single query (the same rule and message as the
DuckDB store's SQL access). Results come back as Arrow and are turned into plain Python values
the same way for both.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, QueryError, QueryTimeout, ReadOnlyQuery, ResultTooLarge, StoreError
from ..store.database import QueryResult
from .dialect import SESSION_SETTINGS, code_only, translate

__all__ = ["ClickHouseLimits", "ClickHouseReader", "ClickHouseTarget", "open_clickhouse", "parse_url"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Statement kinds that only read (the first keyword); readonly=1 is the guarantee, this the early,
# clear refusal. One statement per call: ClickHouse itself runs one per request.
_READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
# clauses that send the result elsewhere than back to the caller (a file, another format)
_CLIENT_CLAUSE = re.compile(
    r"\bINTO\s+OUTFILE\b|\bFORMAT\s+[A-Za-z]\w*\s*(?:SETTINGS\b.*)?$", re.IGNORECASE | re.DOTALL
)
_ALLOWED = (
    "this SQL access is read-only: it runs one query (SELECT, WITH … SELECT, SHOW, DESCRIBE, EXPLAIN); "
    "query the views shadow_runs, shadow_pairs, shadow_summary"
)


@dataclass(frozen=True, slots=True)
class ClickHouseLimits:
    """What one query may cost, enforced by ClickHouse itself (settings of every query)."""

    max_sql_bytes: int = 1 * 2**20
    timeout_s: float = 60.0
    max_result_rows: int = 10_000_000
    max_result_bytes: int = 1 * 2**30

    def settings(self) -> dict[str, Any]:
        return {
            **SESSION_SETTINGS,
            "max_query_size": self.max_sql_bytes,
            "max_execution_time": self.timeout_s,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
            "result_overflow_mode": "throw",
            # last: once set, no later setting (and no SETTINGS clause in a query) can change anything
            "readonly": 1,
        }


@dataclass(frozen=True, slots=True)
class ClickHouseTarget:
    """Where the views and otel_traces live, parsed from a URL."""

    kind: str  # "http" (a server, clickhouse-connect) or "chdb" (in-process)
    database: str
    host: str = ""
    port: int = 0
    secure: bool = False
    username: str = "default"
    password: str = ""
    path: str = ""  # chdb: the folder

    @property
    def where(self) -> str:
        if self.kind == "chdb":
            return f"chdb {self.path or ':memory:'} database {self.database}"
        return f"ClickHouse {'https' if self.secure else 'http'}://{self.host}:{self.port} database {self.database}"


def parse_url(url: str) -> ClickHouseTarget:
    """``http(s)://[user[:password]@]host[:port][/database]`` or ``chdb:[path][?database=name]``."""
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parsed.query)
    if parsed.scheme == "chdb":
        database = (query.get("database") or ["default"])[0]
        path = urllib.parse.unquote(parsed.netloc + parsed.path)
        return ClickHouseTarget("chdb", _identifier(database, url), path=path)
    if parsed.scheme in ("http", "https", "clickhouse"):
        secure = parsed.scheme == "https"
        database = parsed.path.strip("/") or (query.get("database") or ["default"])[0]
        if not parsed.hostname:
            raise ConfigError(f"ClickHouse URL {_redact(url)!r} names no host; e.g. http://localhost:8123/default")
        try:
            port = parsed.port or (8443 if secure else 8123)
        except ValueError as exc:
            raise ConfigError(f"ClickHouse URL {_redact(url)!r}: {exc}") from exc
        return ClickHouseTarget(
            "http",
            _identifier(database, url),
            host=parsed.hostname,
            port=port,
            secure=secure,
            username=urllib.parse.unquote(parsed.username or "default"),
            password=urllib.parse.unquote(parsed.password or ""),
        )
    raise ConfigError(
        f"ClickHouse URL {_redact(url)!r} must start with http://, https:// (a server) or chdb: (in-process), "
        "e.g. http://localhost:8123/default"
    )


def _identifier(name: str, url: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ConfigError(
            f"database {name!r} in ClickHouse URL {_redact(url)!r} is not a plain name (letters, digits, _)"
        )
    return name


def _redact(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url


def check_query(sql: str, max_sql_bytes: int) -> str:
    """``sql`` without a final ``;`` if it is one reading statement; ``ReadOnlyQuery`` or ``QueryError`` otherwise."""
    if len(sql.encode("utf-8", "surrogatepass")) > max_sql_bytes:
        raise QueryError(f"SQL text longer than {max_sql_bytes} bytes; send a shorter query")
    code = code_only(sql).strip()
    if code.endswith(";"):
        code = code.rstrip(";").strip()
        sql = sql[: sql.rstrip().rfind(";")]
    if not code:
        raise QueryError("no SQL statement given")
    if ";" in code:
        raise QueryError("one statement at a time: ClickHouse runs a single query per request")
    keyword = code.lstrip("( ").split(None, 1)[0].upper()
    if keyword not in _READ_KEYWORDS:
        raise ReadOnlyQuery(f"{keyword} statements are refused: {_ALLOWED}")
    clause = _CLIENT_CLAUSE.search(code)
    if clause:
        # readonly=1 does not stop these: chdb (and clickhouse-local) writes INTO OUTFILE on the host
        raise ReadOnlyQuery(f"{' '.join(clause.group(0).split()).upper()} is refused: results come back as rows")
    return sql


class ClickHouseReader:
    """``query(sql) -> QueryResult``, as the DuckDB store's readers: what ``build_report`` reads through."""

    def __init__(self, target: ClickHouseTarget, limits: ClickHouseLimits | None = None) -> None:
        self.target = target
        self.limits = limits or ClickHouseLimits()
        self.where = target.where
        self._client: Any = None
        self._chdb: Any = None
        self._settings: dict[str, Any] = {}
        if target.kind == "chdb":
            self._chdb = _open_chdb(target, self.limits.settings())
        else:
            self._client, self._settings = _open_http(target, self.limits.settings())

    def query(self, sql: str) -> QueryResult:
        text = translate(check_query(sql, self.limits.max_sql_bytes))
        try:
            if self._chdb is not None:
                table = self._chdb.query(text, "ArrowTable")
            else:
                table = self._client.query_arrow(text, settings=self._settings)
        except Exception as exc:  # the driver's errors: mapped to otel-shadow's, by ClickHouse's code
            if self._chdb is not None:
                self._settle()
            raise _error(exc, self.limits) from exc
        return arrow_to_result(table)

    def _settle(self) -> None:
        """After a query stopped mid-result (time or size limit), chdb answers the next query with what
        was left of it; a throwaway query takes that, so the caller's next query gets its own result."""
        try:
            self._chdb.query("SELECT 1", "ArrowTable")
        except Exception:
            pass

    def close(self) -> None:
        if self._chdb is not None:
            self._chdb.close()
            self._chdb = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ClickHouseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_clickhouse(url: str, limits: ClickHouseLimits | None = None) -> ClickHouseReader:
    """A read-only reader over the ClickHouse database that ``url`` names (see the module doc)."""
    return ClickHouseReader(parse_url(url), limits)


def _open_chdb(target: ClickHouseTarget, settings: dict[str, Any]) -> Any:
    chdb = _import("chdb", "chdb")
    if target.path:
        Path(target.path).mkdir(parents=True, exist_ok=True)
    params = urllib.parse.urlencode(settings)  # dict order: readonly last
    location = f"file:{target.path}" if target.path else ":memory:"
    try:
        connection = chdb.connect(f"{location}?{params}")
        connection.query(f"USE `{target.database}`")
    except Exception as exc:
        raise StoreError(f"cannot open {target.where}: {_first_line(exc)}") from exc
    return connection


def _open_http(target: ClickHouseTarget, settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The client, and the settings each query carries (readonly=1 unless the user's profile is already read-only)."""
    clickhouse_connect = _import("clickhouse_connect", "clickhouse-connect")
    try:
        client = clickhouse_connect.get_client(
            host=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            database=target.database,
            secure=target.secure,
            connect_timeout=10,
            send_receive_timeout=_answer_within(float(settings["max_execution_time"])),
            # no session: each query carries its own settings, and a session would refuse a second query from
            # another thread while one runs (the driver raises "concurrent queries within the same session")
            autogenerate_session_id=False,
        )
    except Exception as exc:
        if _code_of(exc) & _AUTH_CODES:
            raise StoreError(
                f"{target.where} refused the user {target.username!r}: the password is wrong or there is no such "
                "user (AUTHENTICATION_FAILED); check the user and password in the URL (http://user:password@host…)"
            ) from exc
        raise StoreError(f"cannot reach {target.where}: {_first_line(exc)}") from exc
    profile = client.server_settings.get("readonly")
    level = int(profile.value) if profile is not None and str(profile.value).isdigit() else 0
    if level == 1:
        client.close()
        raise StoreError(
            f"the ClickHouse user {target.username!r} has readonly = 1, which also forbids the query settings "
            "otel-shadow needs (join_use_nulls, cast_keep_nullable, its limits); give it a profile with "
            "readonly = 2 (reads only, settings allowed) or none: otel-shadow sets readonly = 1 itself"
        )
    if level == 2:  # already read-only, and the readonly setting itself cannot be changed
        settings = {k: v for k, v in settings.items() if k != "readonly"}
    return client, settings


def _answer_within(timeout_s: float) -> int:
    """How long the driver waits for an answer: the server stops a query at ``timeout_s`` and answers, so
    wait that long again (1 to 10 s) for the answer to arrive, then give up on a server that does not answer."""
    return math.ceil(timeout_s + min(10.0, max(1.0, timeout_s)))


def _import(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"reading ClickHouse needs the {package} package: pip install 'otel-shadow[clickhouse]'"
            + (" chdb" if package == "chdb" else "")
        ) from exc


# ClickHouse error codes that name what the user can do
_TIMEOUT_CODES = {"159", "TIMEOUT_EXCEEDED"}
_TOO_LARGE_CODES = {"396", "TOO_MANY_ROWS_OR_BYTES"}
_READONLY_CODES = {"164", "READONLY", "497", "ACCESS_DENIED"}
_UNKNOWN_TABLE_CODES = {"60", "UNKNOWN_TABLE"}
_AUTH_CODES = {
    "516",
    "AUTHENTICATION_FAILED",
    "192",
    "UNKNOWN_USER",
    "193",
    "WRONG_PASSWORD",
    "194",
    "REQUIRED_PASSWORD",
}


def _code_of(exc: Exception) -> set[str]:
    """ClickHouse's error code and name in a driver's or chdb's error (the driver's own ``code`` too)."""
    text = str(exc)
    code = re.search(r"Code:\s*(\d+)", text)
    name = re.search(r"\(([A-Z_]+)\)", text)
    keys = {code.group(1) if code else "", name.group(1) if name else ""}
    if getattr(exc, "code", None) is not None:
        keys.add(str(exc.code))  # type: ignore[attr-defined]  # clickhouse-connect's DatabaseError
    return keys - {""}


# clickhouse-connect's wrapping of the server's message: "Received ClickHouse exception, code: N, server
# response: <message> (version …) (for url …)"; the message alone reads the same as chdb's
_DRIVER_WRAPPING = re.compile(
    r"^Received ClickHouse exception, code: \d+, server response: |(?: \(version [^)]*\))?(?: \(for url [^)]*\))?$"
)


def _error(exc: Exception, limits: ClickHouseLimits) -> StoreError:
    keys = _code_of(exc)
    detail = _DRIVER_WRAPPING.sub("", _first_line(exc))
    if "Read timed out" in str(exc):  # the driver gave up: the server did not answer, not even its time-limit error
        return QueryTimeout(
            f"ClickHouse did not answer within {_answer_within(limits.timeout_s)} s (the query's limit is "
            f"{limits.timeout_s:g} s, which the server enforces); is the server overloaded or the network slow? "
            "Narrow the query (a WHERE on start_time, a LIMIT) or try again"
        )
    if keys & _TIMEOUT_CODES:
        return QueryTimeout(
            f"the query ran longer than {limits.timeout_s:g} s and was stopped; narrow it "
            "(a WHERE on start_time, a LIMIT) or query a view that aggregates"
        )
    if keys & _TOO_LARGE_CODES:
        return ResultTooLarge(
            f"the result passed {limits.max_result_rows} rows or {limits.max_result_bytes} bytes; "
            "select fewer columns, add a LIMIT, or aggregate (GROUP BY)"
        )
    if keys & _READONLY_CODES:
        return ReadOnlyQuery(f"{detail} ({_ALLOWED})")
    if keys & _UNKNOWN_TABLE_CODES and "shadow_" in detail:
        missing = detail.split(" In scope ", 1)[0]  # the analyzer then repeats the whole query: the name is enough
        return QueryError(
            f"{missing.rstrip('. ')}; create otel-shadow's views first: otel-shadow clickhouse-views --clickhouse URL"
        )
    if "Connection" in type(exc).__name__ or isinstance(exc, OSError):
        return StoreError(f"cannot reach ClickHouse: {detail}")
    return QueryError(detail)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:2000] if text else type(exc).__name__


def arrow_to_result(table: Any) -> QueryResult:
    """An Arrow table from ClickHouse as plain Python rows, typed as the DuckDB store returns them.

    Timestamps become naive UTC ``datetime`` (DuckDB's TIMESTAMP; microseconds), maps ``dict``, and
    a list of numbers a numpy array, as the DuckDB store gives it (no Python number per element: the
    report's latencies over 10M pairs are one list of 20M).
    """
    import pyarrow as pa

    columns = []
    for field, column in zip(table.schema, table.columns):
        kind = field.type
        if pa.types.is_timestamp(kind):
            if kind.tz is not None:
                column = column.cast(pa.timestamp(kind.unit, tz="UTC")).cast(pa.timestamp(kind.unit))
            if kind.unit == "ns":
                column = column.cast(pa.timestamp("us"), safe=False)
        if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
            pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
        ):
            columns.append([v for chunk in column.chunks for v in _numeric_lists(chunk)])
            continue
        values = column.to_pylist()
        if pa.types.is_map(kind):
            values = [None if v is None else dict(v) for v in values]
        columns.append(values)
    rows = list(zip(*columns)) if columns else []
    return QueryResult(list(table.schema.names), rows)


def _numeric_lists(chunk: Any) -> list[Any]:
    """A list column's values as numpy arrays; a list holding a NULL stays a list (numpy has no NULL)."""
    if chunk.values.null_count:
        return list(chunk.to_pylist())
    offsets = chunk.offsets.to_numpy()
    values = chunk.values.to_numpy(zero_copy_only=False)
    valid = chunk.is_valid().to_numpy(zero_copy_only=False)
    return [values[offsets[i] : offsets[i + 1]].copy() if valid[i] else None for i in range(len(chunk))]
