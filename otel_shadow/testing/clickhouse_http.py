"""A ClickHouse HTTP interface on loopback, executed by chdb: it stands in for a ClickHouse server in tests.

There is no ClickHouse server in the test environment; chdb is ClickHouse's engine in-process. This
server puts the part of ClickHouse's documented HTTP interface that clients such as
clickhouse-connect use in front of it, so a driver talks HTTP to a real ClickHouse engine:

- the query in the POST body, or in ``query=`` (for POST, the body follows it after a line feed);
  ``GET`` implies ``readonly = 2``, as on a server; ``GET /ping`` answers ``Ok.``;
- every other URL parameter is a setting of that query, applied by chdb itself with one ``SET``
  (ClickHouse's own checks: a ``readonly = 1`` user or query refuses writes, DDL and setting
  changes; a query's ``SETTINGS`` clause cannot lift ``readonly``; ``max_execution_time``,
  ``max_result_rows`` / ``max_result_bytes`` stop the query); ``database``, ``default_format``,
  ``query_id``, ``param_<name>`` (server-side query parameters) and the transport parameters
  (``session_id``, ``wait_end_of_query``, ``client_protocol_version``…) are read as ClickHouse reads them;
- users with passwords and a profile ``readonly`` level, through ``X-ClickHouse-User`` /
  ``X-ClickHouse-Key``, HTTP basic auth, or ``user`` / ``password`` parameters (mixing them is refused,
  as ClickHouse refuses it); a wrong password is ``Code: 516 … (AUTHENTICATION_FAILED)``, HTTP 403;
- results in whatever format the query names (``FORMAT Native``, ``Arrow``, ``ArrowStream``…,
  produced by chdb), else ``default_format``, else ``TabSeparated``; gzip when the client sends
  ``enable_http_compression=1`` and accepts it;
- ``X-ClickHouse-Summary``, ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Format``,
  ``X-ClickHouse-Timezone`` on success; on failure ClickHouse's body ``Code: N. DB::Exception: …
  (NAME) (version …)``, the ``X-ClickHouse-Exception-Code`` header and the HTTP status ClickHouse's
  ``exceptionCodeToHTTPStatus`` gives that code;
- ``INTO OUTFILE`` is refused (``INTO_OUTFILE_NOT_ALLOWED``), as a server refuses it: chdb would
  write the file on this host. For the same reason, and for every user, so is what would reach past a
  server's sandbox through chdb (``ACCESS_DENIED``): ``file()``, ``url()``, ``s3()``, ``remote()``,
  ``Python()`` and the like, ``FROM INFILE``, ``SYSTEM`` statements. A query the parser refuses is
  refused with the parser's error, so every query that reaches chdb has been checked.

What it does not do: ``client_protocol_version`` is read but Native output stays revision 0's (chdb
writes no other; clickhouse-connect's probe then reads revision 0); sessions keep no state between requests (a ``session_id`` only locks, as on a
server: two requests at once in one session are refused); results are sent whole, not streamed;
no TLS, no native TCP protocol, one query at a time (chdb runs them in turn). ``delay_s`` makes it
answer late, to test a client's timeouts.

    with ClickHouseHTTPServer(folder, users={"reader": ClickHouseUser("secret")}) as server:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username="reader",
                                               password="secret")

Run standalone: ``python -m otel_shadow.testing.clickhouse_http FOLDER --port 8123``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ._serve import ThreadedServer

__all__ = ["ClickHouseHTTPServer", "ClickHouseUser"]

# URL parameters ClickHouse's HTTP handler reads itself; every other one is a setting of the query
_TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "client_protocol_version",
        "compress",
        "decompress",
    }
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# ClickHouse's error codes used here (ErrorCodes.cpp)
_CODES = {
    "BAD_ARGUMENTS": 36,
    "SYNTAX_ERROR": 62,
    "UNKNOWN_FORMAT": 73,
    "UNKNOWN_SETTING": 115,
    "QUERY_IS_TOO_LARGE": 229,
    "INTO_OUTFILE_NOT_ALLOWED": 358,
    "SESSION_IS_LOCKED": 373,
    "AUTHENTICATION_FAILED": 516,
    "ACCESS_DENIED": 497,
}
# exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by error name; anything else is a 500
_STATUS = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED"), 403),
    **dict.fromkeys(
        (
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    **dict.fromkeys(("SOCKET_TIMEOUT", "CANNOT_OPEN_FILE"), 503),
    "HTTP_LENGTH_REQUIRED": 411,
}
_CODE = re.compile(r"^Code: (\d+)\. ")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]*)\)(?: \(version [^)]*\))?\.?$")
_NESTED_CODE = re.compile(r"^(Code: \d+\. DB::Exception: )(?:Code: \d+\. DB::Exception: )+")
_NESTED_TAIL = re.compile(r" \(version [^)]*\)\. \([A-Z][A-Z0-9_]*\)$")
_LEFTOVER = re.compile(r"^(?:(?:Runtime|Chdb)Error: )+")


@dataclass(frozen=True, slots=True)
class ClickHouseUser:
    """A user: its password and its settings profile's ``readonly`` level (0 writes, 1 reads only, 2 reads and sets)."""

    password: str = ""
    readonly: int = 0


class ClickHouseError(Exception):
    """An error this server raises itself, in ClickHouse's form (code, name, message)."""

    def __init__(self, name: str, message: str) -> None:
        self.code = _CODES[name]
        super().__init__(f"Code: {self.code}. DB::Exception: {message}. ({name})")


class ClickHouseHTTPServer:
    """ClickHouse's HTTP interface over a chdb folder, on 127.0.0.1 (a free port unless given), in a thread."""

    KEEP_QUERIES = 10_000  # ``queries`` holds the last ones only: a standalone server does not grow

    def __init__(
        self,
        path: str | Path,
        users: Mapping[str, ClickHouseUser] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        delay_s: float = 0.0,
        max_request_bytes: int = 16 * 2**20,
    ) -> None:
        import chdb

        self._chdb = chdb
        self.path = str(path)
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self.users = dict(users) if users is not None else {"default": ClickHouseUser()}
        self.host = host
        self.port = port
        self.delay_s = delay_s  # seconds before each answer (a slow server, for clients' timeouts)
        self.max_request_bytes = max_request_bytes
        self.queries: list[dict[str, Any]] = []  # what the last requests ran: user, query, settings (for tests)
        self._engine = threading.Lock()  # chdb runs one query at a time in a process
        self._sessions: set[str] = set()
        self._data_dir = tempfile.mkdtemp(prefix="clickhouse-http-")  # 0700: an INSERT's data, while it runs
        self._data_file = str(Path(self._data_dir) / "insert.data")
        self._sessions_lock = threading.Lock()
        with self._engine:
            connection = chdb.connect(f"file:{self.path}")
            try:
                self.version, self.timezone = self._run(connection, "SELECT version(), timezone()").split("\t")
                formats = self._run(connection, "SELECT name FROM system.formats WHERE is_output")
                self._formats = frozenset(formats.split("\n"))
            finally:
                connection.close()
        self._server: ThreadedServer | None = None

    # --- URLs ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def clickhouse_url(self, database: str = "default", user: str = "default", password: str = "") -> str:
        """``http://user:password@host:port/database``, as ``otel-shadow --clickhouse`` takes it."""
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"http://{auth}{self.host}:{self.port}/{database}"

    # --- one request ----------------------------------------------------------------------------------
    async def _ping(self, request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def _root(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "GET" and "query" not in params:
            return PlainTextResponse("Ok.\n")
        query_id = params.get("query_id") or request.headers.get("x-clickhouse-query-id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.timezone}
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        session = params.get("session_id")
        try:
            user = self._authenticate(request, params)
            body = await self._body(request)
            if session is not None:
                self._lock_session(session)
            try:
                output, fmt, summary = await run_in_threadpool(
                    self._execute, user, params, body, request.method, request.headers.get("content-encoding", "")
                )
            finally:
                if session is not None:
                    with self._sessions_lock:
                        self._sessions.discard(session)
        except Exception as exc:  # ClickHouse's errors (chdb's, or this server's own) go back as a server sends them
            return self._error_response(exc, headers)
        headers["X-ClickHouse-Format"] = fmt
        headers["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
        accepted = request.headers.get("accept-encoding", "")
        if params.get("enable_http_compression") in ("1", "true") and "gzip" in accepted:
            output = gzip.compress(output, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(output, media_type=_media_type(fmt), headers=headers)

    def _authenticate(self, request: Request, params: dict[str, str]) -> tuple[str, ClickHouseUser]:
        name = request.headers.get("x-clickhouse-user", "")
        key = request.headers.get("x-clickhouse-key", "")
        authorization = request.headers.get("authorization", "")
        if name or key:
            if authorization or "user" in params or "password" in params:
                raise ClickHouseError(
                    "AUTHENTICATION_FAILED",
                    "Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers and other "
                    "authentication methods simultaneously",
                )
        elif authorization:
            if "user" in params or "password" in params:
                raise ClickHouseError(
                    "AUTHENTICATION_FAILED",
                    "Invalid authentication: it is not allowed to use Authorization HTTP header and "
                    "authentication via parameters simultaneously",
                )
            scheme, _, info = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise ClickHouseError(
                    "AUTHENTICATION_FAILED",
                    f"Invalid authentication: '{scheme}' HTTP Authorization scheme is not supported",
                )
            try:
                name, _, key = base64.b64decode(info.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ClickHouseError(
                    "AUTHENTICATION_FAILED", "Invalid authentication: malformed Basic credentials"
                ) from None
        else:
            name, key = params.get("user", "default"), params.get("password", "")
        name = name or "default"
        user = self.users.get(name)
        if user is None or user.password != key:
            raise ClickHouseError(
                "AUTHENTICATION_FAILED",
                f"{name}: Authentication failed: password is incorrect, or there is no user with such name",
            )
        return name, user

    async def _body(self, request: Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_request_bytes:
                raise ClickHouseError(
                    "QUERY_IS_TOO_LARGE", f"the request is longer than this server's {self.max_request_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _lock_session(self, session: str) -> None:
        with self._sessions_lock:
            if session in self._sessions:
                raise ClickHouseError("SESSION_IS_LOCKED", f"Session {session} is locked by a concurrent client")
            self._sessions.add(session)

    def _execute(
        self, user: tuple[str, ClickHouseUser], params: dict[str, str], body: bytes, method: str, encoding: str
    ) -> tuple[bytes, str, dict[str, str]]:
        name, profile = user
        # as a server reads it: the query= parameter and a line feed, then the body (decompressed)
        query = params.get("query", "").encode()
        body = _decompress(body, encoding) if method == "POST" else b""
        request = query + b"\n" + body if query and body else query or body
        data: bytes | None = None  # an INSERT's data, after its FORMAT name
        insert = _INSERT_HEAD.match(request)
        if insert and insert.end() < len(request):
            request, data = request[: insert.end()], request[insert.end() :]
        try:
            text = request.decode()
        except UnicodeDecodeError:
            raise ClickHouseError("BAD_ARGUMENTS", "the query is not valid UTF-8") from None
        if not text.strip():
            raise ClickHouseError("SYNTAX_ERROR", "Empty query")
        settings = {k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")}
        for key in settings:
            if not _NAME.match(key):
                raise ClickHouseError("UNKNOWN_SETTING", f"Unknown setting '{key[:200]}'")
        # a server applies GET requests with readonly = 2 (reads, and settings) unless the profile is stricter
        readonly = profile.readonly or (2 if method == "GET" else 0)
        default_format = params.get("default_format", "TabSeparated")
        if default_format not in self._formats:
            raise ClickHouseError("UNKNOWN_FORMAT", f"Unknown format {default_format[:200]}")
        database = params.get("database", "")
        if database and not _NAME.match(database):
            raise ClickHouseError("BAD_ARGUMENTS", f"database {database[:200]!r} is not a plain name")
        query_params = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        self.queries.append({"user": name, "query": text, "settings": settings, "method": method})
        del self.queries[: -self.KEEP_QUERIES]
        with self._engine:
            outline = self._outline(text)
            if _has_into_outfile(outline):
                raise ClickHouseError("INTO_OUTFILE_NOT_ALLOWED", "INTO OUTFILE is not allowed")
            reach = _host_access(outline)
            if reach is not None:
                raise ClickHouseError(
                    "ACCESS_DENIED",
                    f"{name}: Not enough privileges: this test server grants no user {reach} "
                    "(chdb would reach this host's files, URLs or process)",
                )
            fmt = _output_format(outline) or default_format
            if data is not None:
                # chdb reads the data from a file (as clickhouse-local's INSERT … FROM INFILE)
                text = self._insert_from_file(outline, data)
            location = f"file:{self.path}" + (f"?readonly={readonly}" if readonly else "")
            connection = self._chdb.connect(location)
            try:
                if database:
                    connection.query(f"USE `{database}`")
                if settings:
                    # one SET: ClickHouse checks every change against the user's profile, then applies them all
                    # (readonly = 1 in the profile refuses any; readonly = 1 sent here refuses later ones)
                    changes = ", ".join(f"{key} = {_literal(value)}" for key, value in settings.items())
                    connection.query(f"SET {changes}")
                started = time.monotonic_ns()
                try:
                    result = connection.query(text, default_format, params=query_params or None)
                except Exception:
                    _settle(connection)
                    raise
                output = result.bytes()
                summary = {
                    "read_rows": str(result.rows_read()),
                    "read_bytes": str(result.bytes_read()),
                    "written_rows": str(getattr(result, "rows_written", lambda: 0)()),
                    "written_bytes": str(getattr(result, "bytes_written", lambda: 0)()),
                    "total_rows_to_read": str(result.rows_read()),
                    "result_bytes": str(len(output)),
                    "elapsed_ns": str(time.monotonic_ns() - started),
                }
            finally:
                connection.close()
                if data is not None:
                    Path(self._data_file).unlink(missing_ok=True)
        return output, fmt, summary

    def _insert_from_file(self, outline: str, data: bytes) -> str:
        head, _, fmt = outline.rpartition(" FORMAT ")
        if not head.startswith("INSERT INTO ") or not _NAME.match(fmt):
            raise ClickHouseError("SYNTAX_ERROR", "an INSERT followed by data must end with FORMAT name")
        Path(self._data_file).write_bytes(data)
        return f"{head} FROM INFILE {_literal(self._data_file)} FORMAT {fmt}"

    def _outline(self, text: str) -> str:
        """The query as ClickHouse's own formatter writes it (comments gone, keywords upper case).

        A query the parser refuses is refused here with the parser's error (chdb would refuse it too):
        what is not understood is not run, so nothing the check cannot see reaches chdb."""
        connection = self._chdb.connect(f"file:{self.path}?max_query_size={self.max_request_bytes * 2 + 1024}")
        try:
            return self._run(connection, f"SELECT formatQuerySingleLine({_literal(text)})")
        finally:
            connection.close()

    @staticmethod
    def _run(connection: Any, sql: str) -> str:
        return str(connection.query(sql, "TabSeparatedRaw").bytes().decode().rstrip("\n"))

    def _error_response(self, exc: Exception, headers: dict[str, str]) -> Response:
        message = _LEFTOVER.sub("", str(exc).strip())
        # chdb wraps an error in its own again ("Code: 73. DB::Exception: Code: 73. … (version v). (NAME)")
        message = _NESTED_CODE.sub(r"\1", message)
        while _NESTED_TAIL.search(message):
            message = _NESTED_TAIL.sub("", message)
        match = _CODE.match(message)
        code = int(match.group(1)) if match else 1001  # STD_EXCEPTION: not one of ClickHouse's own
        if not match:
            message = f"Code: 1001. DB::Exception: {type(exc).__name__}: {message}. (STD_EXCEPTION)"
        if "(version " not in message:
            message = f"{message} (version {self.version})"
        name = _ERROR_NAME.search(message)
        status = _STATUS.get(name.group(1), 500) if name else 500
        headers = {**headers, "X-ClickHouse-Exception-Code": str(code)}
        return PlainTextResponse(message + "\n", status_code=status, headers=headers)

    # --- the app --------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ping", self._ping, methods=["GET", "HEAD"]),
                Route("/", self._root, methods=["GET", "POST"]),
            ]
        )

    def start(self) -> ClickHouseHTTPServer:
        self._server = ThreadedServer(self.app(), self.host, self.port, name="clickhouse-http")
        self.port = self._server.start("the ClickHouse HTTP test server")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(10)
        shutil.rmtree(self._data_dir, ignore_errors=True)

    def __enter__(self) -> ClickHouseHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# the head of an INSERT whose data follows it: the data starts after the FORMAT name and one line feed
_INSERT_HEAD = re.compile(rb"^\s*INSERT\s+INTO\b.*?\bFORMAT\s+\w+[ \t]*(?:\r?\n)?", re.IGNORECASE | re.DOTALL)


def _decompress(body: bytes, encoding: str) -> bytes:
    """A request body sent with ``Content-Encoding`` (the codecs clickhouse-connect sends, when installed)."""
    encoding = encoding.strip().lower()
    if not body or encoding in ("", "identity"):
        return body
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "lz4":
            import lz4.frame  # type: ignore[import-untyped,unused-ignore]

            return bytes(lz4.frame.decompress(body))
        if encoding == "zstd":
            from backports import zstd  # type: ignore[import-not-found,unused-ignore]

            return bytes(zstd.decompress(body))
        if encoding == "br":
            import brotli  # type: ignore[import-not-found,unused-ignore]

            return bytes(brotli.decompress(body))
    except ImportError:
        pass
    except Exception as exc:
        raise ClickHouseError("BAD_ARGUMENTS", f"cannot decompress the {encoding} body: {exc}") from None
    raise ClickHouseError("BAD_ARGUMENTS", f"Content-Encoding {encoding[:100]!r} is not supported here")


def _literal(value: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _settle(connection: Any) -> None:
    """After a query stopped mid-result, chdb hands what was left of it to the connection's next query."""
    try:
        connection.query("SELECT 1")
    except Exception:
        pass


def _tokens(outline: str) -> list[str]:
    """The words of a formatted query (quoted names unquoted) and its ``(``, outside its string literals."""
    words, i, n = [], 0, len(outline)
    while i < n:
        c = outline[i]
        if c in "'`\"":
            j = i + 1
            while j < n and outline[j] != c:
                j += 2 if outline[j] == "\\" else 1
            if c != "'":  # a quoted name is a name: `file`(…) calls file
                words.append(outline[i + 1 : j])
            i = j + 1
        elif c.isalnum() or c == "_":
            j = i
            while j < n and (outline[j].isalnum() or outline[j] == "_"):
                j += 1
            words.append(outline[i:j])
            i = j
        else:
            if c == "(":
                words.append(c)
            i += 1
    return words


# functions through which chdb (clickhouse-local) reaches files, URLs, other servers or this process
_HOST_FUNCTIONS = frozenset(
    (
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "hdfs",
        "hdfscluster",
        "azureblobstorage",
        "azureblobstoragecluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "mongodb",
        "redis",
        "sqlite",
        "jdbc",
        "odbc",
        "executable",
        "python",
        "arrowflight",
        "ytsaurus",
    )
)
_HOST_FUNCTION_PREFIXES = ("iceberg", "deltalake", "hudi", "paimon", "datalake")


def _host_access(outline: str) -> str | None:
    """What in the query would reach past a server's sandbox through chdb, if anything.

    A server confines ``file()`` to its user_files_path and has no ``INFILE`` or ``Python()``; chdb reads
    any path of this host, any URL, and the objects of this Python process. So these are refused for every
    user: the functions above, ``FROM INFILE``, and ``SYSTEM`` statements (chdb would act on this process)."""
    words = _tokens(outline)
    if words and words[0].upper() == "SYSTEM":
        return "SYSTEM statements"
    for a, b in zip(words, words[1:]):
        if a.upper() == "FROM" and b.upper() == "INFILE":
            return "FROM INFILE"
        name = a.lower()
        if b == "(" and (name in _HOST_FUNCTIONS or name.startswith(_HOST_FUNCTION_PREFIXES)):
            return f"the function {a}()"
    return None


def _has_into_outfile(outline: str) -> bool:
    words = _tokens(outline)
    return any(a == "INTO" and b == "OUTFILE" for a, b in zip(words, words[1:]))


def _output_format(outline: str) -> str | None:
    """The format a ``FORMAT name`` clause names (its last one, outside literals), if any."""
    words = _tokens(outline)
    names = [b for a, b in zip(words, words[1:]) if a == "FORMAT"]
    return names[-1] if names else None


def _media_type(fmt: str) -> str:
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8"
    return "application/octet-stream"


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="ClickHouse's HTTP interface over a chdb folder, for tests.")
    parser.add_argument("folder", help="the chdb folder the tables are in")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = ClickHouseHTTPServer(args.folder, port=args.port, host=args.host).start()
    print(f"ClickHouse HTTP interface (chdb {server.version}) on {server.url}, folder {args.folder}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
