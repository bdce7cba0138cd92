"""``--clickhouse http://…``: otel-shadow through clickhouse-connect, ClickHouse's own driver, over real HTTP
to a ClickHouse engine (chdb behind ``otel_shadow.testing.clickhouse_http``, ClickHouse's HTTP interface).

The same spans in DuckDB, in chdb read in-process and in chdb read over HTTP give the same report;
the reader stays read-only and bounded over HTTP, and each way it can fail says what happened."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow.analysis import Thresholds, build_report
from otel_shadow.cli import main
from otel_shadow.clickhouse import VIEW_NAMES, ClickHouseLimits, ClickHouseReader, open_clickhouse
from otel_shadow.errors import QueryError, QueryTimeout, ReadOnlyQuery, ResultTooLarge, StoreError
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter
from otel_shadow.testing.clickhouse_http import ClickHouseHTTPServer, ClickHouseUser

from .otel_traces import ClickHouseExporterRows
from .simulate import simulate, with_resent_copies, with_scores
from .test_differential import _query, _same

clickhouse_connect = pytest.importorskip("clickhouse_connect")

REQUESTS = 200
DATABASE = "over_http"
USERS = {
    "default": ClickHouseUser(),
    "admin": ClickHouseUser("admin-secret"),
    "reader": ClickHouseUser("reader-secret"),  # a profile with readonly = 0: otel-shadow sets readonly = 1
    "analyst": ClickHouseUser("analyst-secret", readonly=2),  # already read-only, may set settings
    "locked": ClickHouseUser("locked-secret", readonly=1),  # may not even set settings
}


@pytest.fixture(scope="module")
def server(chdb_folder: Path) -> Iterator[ClickHouseHTTPServer]:
    with ClickHouseHTTPServer(chdb_folder, users=USERS) as started:
        yield started


@pytest.fixture(scope="module")
def duckdb_file(tmp_path_factory: pytest.TempPathFactory, chdb_folder: Path, server: ClickHouseHTTPServer) -> str:
    """The same spans in a DuckDB file and in chdb's otel_traces; the views created over HTTP by the CLI."""
    spans = with_resent_copies(with_scores(simulate(REQUESTS, seed=11)))
    path = str(tmp_path_factory.mktemp("over_http") / "shadow.duckdb")
    duck = DuckDBSpanExporter(path)
    assert duck.export(spans).name == "SUCCESS"
    duck.shutdown()
    rows = ClickHouseExporterRows(chdb_folder, DATABASE)
    rows.connection.query(f"TRUNCATE TABLE `{DATABASE}`.`otel_traces`")
    rows.export(spans)
    rows.shutdown()
    main(["clickhouse-views", "--clickhouse", server.clickhouse_url(DATABASE, "admin", "admin-secret")])
    return path


def _url(server: ClickHouseHTTPServer, user: str = "reader") -> str:
    return server.clickhouse_url(DATABASE, user, USERS[user].password)


def _reader(server: ClickHouseHTTPServer, user: str = "reader", **limits: Any) -> ClickHouseReader:
    return open_clickhouse(_url(server, user), ClickHouseLimits(**limits) if limits else None)


def _post(
    server: ClickHouseHTTPServer, sql: str, user: str = "admin", **params: str
) -> tuple[int, dict[str, str], str]:
    """One request to the HTTP interface, without a driver: status, headers, body."""
    query = urllib.parse.urlencode(params)
    request = urllib.request.Request(f"{server.url}/?{query}", data=sql.encode(), method="POST")
    request.add_header("X-ClickHouse-User", user)
    request.add_header("X-ClickHouse-Key", USERS[user].password if user in USERS else "wrong")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode()


def _count(server: ClickHouseHTTPServer, table: str = "otel_traces") -> int:
    status, _, body = _post(server, f"SELECT count() FROM `{DATABASE}`.`{table}`")
    assert status == 200, body
    return int(body)


# --- the same report on three paths -------------------------------------------------------------------


def test_clickhouse_views_over_http_creates_every_view(server: ClickHouseHTTPServer, duckdb_file: str) -> None:
    status, _, body = _post(
        server, f"SELECT name FROM system.tables WHERE database = '{DATABASE}' AND engine = 'View' ORDER BY name"
    )
    assert status == 200
    assert set(body.split()) == set(VIEW_NAMES)
    assert any(q["user"] == "admin" and "CREATE" in q["query"] for q in server.queries)


def test_report_over_http_is_the_report_of_duckdb_and_of_chdb_in_process(
    server: ClickHouseHTTPServer, duckdb_file: str, chdb_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report --format json`` is the same from --db, from --clickhouse chdb: and from --clickhouse http://."""
    common = ["--format", "json", "--min-pairs", "50"]
    main(["report", "--db", duckdb_file, *common])
    from_duckdb = json.loads(capsys.readouterr().out)
    main(["report", "--clickhouse", f"chdb:{chdb_folder}?database={DATABASE}", *common])
    from_chdb = json.loads(capsys.readouterr().out)
    before = len(server.queries)
    main(["report", "--clickhouse", _url(server), *common])
    from_http = json.loads(capsys.readouterr().out)
    verdicts = {c["candidate_config_id"]: c["verdict"] for c in from_http["candidates"]}
    assert verdicts["C-slow"] == "FAIL" and len(set(verdicts.values())) > 1  # a real difference would show
    _same(from_duckdb, from_http, "report over HTTP vs DuckDB")
    _same(from_chdb, from_http, "report over HTTP vs chdb")
    # it went through the server, every query read-only and bounded by the settings the server enforces
    sent = [q for q in server.queries[before:] if q["user"] == "reader" and "shadow_" in q["query"]]
    assert len(sent) >= 3
    for query in sent:
        assert query["settings"]["readonly"] == "1" and query["query"].rstrip().endswith("FORMAT Arrow")
        assert float(query["settings"]["max_execution_time"]) == 60.0
        assert query["settings"]["max_result_bytes"] == str(2**30)


def test_the_views_read_over_http_hold_the_duckdb_rows(server: ClickHouseHTTPServer, duckdb_file: str) -> None:
    with Store.open(duckdb_file, read_only=True) as duck, _reader(server) as reader:
        for view, order in [("shadow_summary", "experiment, candidate_config_id"), ("shadow_coverage", "experiment")]:
            d = duck.query(f"SELECT * FROM {view} ORDER BY {order}")
            c = reader.query(f"SELECT * FROM {view} ORDER BY {order}")
            assert d.columns == c.columns and d.rows
            _same([list(r) for r in d.rows], [list(r) for r in c.rows], view)
        thresholds = Thresholds(min_pairs=20)
        _same(
            build_report(_query(duck), thresholds, segment_by="http.route").to_dict(),
            build_report(_query(reader), thresholds, segment_by="http.route").to_dict(),
            "segmented report",
        )


def test_sql_over_http_prints_the_rows(
    server: ClickHouseHTTPServer, duckdb_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT candidate_config_id, pairs FROM shadow_summary ORDER BY 1"
    main(["sql", "--clickhouse", _url(server), "--format", "csv", sql])
    assert capsys.readouterr().out.splitlines() == [
        "candidate_config_id,pairs",
        f"C-flaky,{REQUESTS}",
        f"C-same,{REQUESTS}",
        f"C-slow,{REQUESTS}",
    ]


def test_a_user_whose_profile_is_already_read_only_reads_the_same_report(
    server: ClickHouseHTTPServer, duckdb_file: str
) -> None:
    """readonly = 2: otel-shadow does not send readonly (the server would refuse the change) and still reads."""
    before = len(server.queries)
    with _reader(server, "reader") as reader, _reader(server, "analyst") as analyst:
        thresholds = Thresholds(min_pairs=50)
        _same(build_report(_query(reader), thresholds).to_dict(), build_report(_query(analyst), thresholds).to_dict())
        with pytest.raises(ReadOnlyQuery):
            analyst.query("SELECT 1 SETTINGS readonly = 0")  # readonly = 2 cannot be lifted either
    sent = [q for q in server.queries[before:] if q["user"] == "analyst" and "shadow_" in q["query"]]
    assert sent and all("readonly" not in q["settings"] for q in sent)


def test_a_user_whose_profile_forbids_settings_is_refused_naming_the_profile_to_use(
    server: ClickHouseHTTPServer, duckdb_file: str
) -> None:
    with pytest.raises(StoreError, match=r"'locked' has readonly = 1.*readonly = 2"):
        _reader(server, "locked")


def test_one_reader_answers_queries_from_two_threads_at_once(server: ClickHouseHTTPServer, duckdb_file: str) -> None:
    results: dict[int, Any] = {}

    def read(i: int) -> None:
        try:
            results[i] = reader.query(f"SELECT {i} AS i, count() FROM shadow_pairs").rows
        except Exception as exc:
            results[i] = exc

    with _reader(server) as reader:
        threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(results) == [0, 1, 2, 3]
    for i, rows in results.items():
        assert not isinstance(rows, Exception), rows
        assert rows[0][0] == i and rows[0][1] > REQUESTS


# --- read-only over HTTP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 SETTINGS readonly = 0",  # a query's own settings cannot lift readonly: the server refuses it
        "SELECT 1 SETTINGS max_result_rows = 0",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",  # a table function that reaches the host
        "WITH 1 AS x SELECT x INTO OUTFILE 'stolen.txt'",  # refused before it is sent
        "INSERT INTO otel_traces (TraceId) VALUES ('x')",
        "DROP TABLE otel_traces",
    ],
)
def test_the_reader_over_http_refuses_what_is_not_a_read(
    server: ClickHouseHTTPServer, duckdb_file: str, chdb_folder: Path, sql: str
) -> None:
    before = _count(server)
    with _reader(server) as reader, pytest.raises(ReadOnlyQuery, match="read-only|refused"):
        reader.query(sql)
    assert _count(server) == before
    assert not any(chdb_folder.rglob("stolen.txt"))


def test_the_server_refuses_writes_sent_with_readonly_whatever_the_driver_sends(
    server: ClickHouseHTTPServer, duckdb_file: str
) -> None:
    """Past the reader's own check: clickhouse-connect sending what a query could send, with readonly = 1."""
    before = _count(server)
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=server.port, username="reader", password="reader-secret", database=DATABASE
    )
    try:
        for sql in ["INSERT INTO otel_traces (TraceId) VALUES ('x')", "CREATE TABLE t (a Int8) ENGINE = Memory"]:
            with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match=r"164.*READONLY"):
                client.command(sql, settings={"readonly": 1})
        with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match=r"READONLY"):
            client.query("SELECT 1 SETTINGS readonly = 0", settings={"readonly": 1})
    finally:
        client.close()
    assert _count(server) == before


def test_into_outfile_is_refused_by_the_server_even_for_a_user_that_may_write(
    server: ClickHouseHTTPServer, duckdb_file: str, chdb_folder: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    status, headers, body = _post(server, f"SELECT 1 INTO /* hidden */ OUTFILE '{target}'")
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "358")
    assert "INTO OUTFILE is not allowed. (INTO_OUTFILE_NOT_ALLOWED)" in body
    assert not target.exists()
    # the words inside a literal are not the clause
    status, _, body = _post(server, "SELECT 'INTO OUTFILE' AS `into outfile`")
    assert (status, body) == (200, "INTO OUTFILE\n")


def test_a_get_request_is_read_only_as_on_a_server(server: ClickHouseHTTPServer, duckdb_file: str) -> None:
    query = urllib.parse.urlencode({"query": f"CREATE TABLE `{DATABASE}`.from_get (a Int8) ENGINE = Memory"})
    request = urllib.request.Request(f"{server.url}/?{query}&user=admin&password=admin-secret")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30)
    with error.value as response:
        assert response.headers["x-clickhouse-exception-code"] == "164"
        assert "(READONLY)" in response.read().decode()
    status, _, body = _post(server, f"EXISTS TABLE `{DATABASE}`.from_get")
    assert (status, body) == (200, "0\n")


# --- each failure says what happened -------------------------------------------------------------------


def test_wrong_credentials_give_a_clear_error_without_the_password(
    server: ClickHouseHTTPServer, duckdb_file: str
) -> None:
    url = server.clickhouse_url(DATABASE, "reader", "not-the-password")
    with pytest.raises(StoreError) as refused:
        open_clickhouse(url)
    message = str(refused.value)
    assert "not-the-password" not in message
    assert "'reader'" in message and "password" in message and f"127.0.0.1:{server.port}" in message
    with pytest.raises(StoreError, match="'nobody'"):
        open_clickhouse(server.clickhouse_url(DATABASE, "nobody", "x"))
    # what the server sent: ClickHouse's code, status and body
    status, headers, body = _post(server, "SELECT 1", user="nobody")
    assert (status, headers["x-clickhouse-exception-code"]) == (403, "516")
    assert (
        body.startswith("Code: 516. DB::Exception: nobody: Authentication failed") and "(AUTHENTICATION_FAILED)" in body
    )
    status, headers, body = _post(server, "SELECT 1", user="admin", password="admin-secret")  # headers and params
    assert (status, headers["x-clickhouse-exception-code"]) == (403, "516")
    assert "not allowed to use X-ClickHouse HTTP headers and other authentication methods" in body


def test_a_server_that_answers_late_hits_the_timeout_with_a_clear_error(
    server: ClickHouseHTTPServer, duckdb_file: str
) -> None:
    reader = _reader(server, timeout_s=1.0)
    try:
        server.delay_s = 4.0
        with pytest.raises(QueryTimeout, match=r"did not answer within \d+ s"):
            reader.query("SELECT count() FROM shadow_pairs")
    finally:
        server.delay_s = 0.0
        reader.close()


def test_a_query_longer_than_the_limit_is_stopped_by_the_server(server: ClickHouseHTTPServer, duckdb_file: str) -> None:
    with _reader(server, timeout_s=3.0) as reader:  # the driver waits 3 s more for the server's answer
        with pytest.raises(QueryTimeout, match=r"longer than 3 s"):
            reader.query("SELECT sum(cityHash64(number)) FROM numbers(1000000000000)")
        assert reader.query("SELECT 42 AS answer").rows == [(42,)]


def test_a_huge_result_hits_the_byte_limit_and_the_next_query_gets_its_own_result(
    server: ClickHouseHTTPServer, duckdb_file: str
) -> None:
    with _reader(server, max_result_bytes=2**20) as reader:
        with pytest.raises(ResultTooLarge, match=r"1048576 bytes"):
            reader.query("SELECT number, toString(number) AS s FROM numbers(5000000)")
        assert reader.query("SELECT 42 AS answer").rows == [(42,)]


def test_a_query_error_over_http_reads_as_clickhouses_message(server: ClickHouseHTTPServer) -> None:
    url = server.clickhouse_url("default", "reader", "reader-secret")
    with open_clickhouse(url) as reader, pytest.raises(QueryError) as failed:
        reader.query("SELECT no_such_column FROM system.one")
    message = str(failed.value)
    assert message.startswith("Code: 47. DB::Exception:") and message.endswith("(UNKNOWN_IDENTIFIER)")
    assert "for url" not in message and "Received ClickHouse exception" not in message


def test_a_missing_view_names_the_command_that_creates_it(server: ClickHouseHTTPServer, duckdb_file: str) -> None:
    url = server.clickhouse_url("default", "reader", "reader-secret")
    with open_clickhouse(url) as reader, pytest.raises(QueryError, match="otel-shadow clickhouse-views") as missing:
        reader.query("SELECT candidate_config_id, count() FROM shadow_summary GROUP BY ALL")
    assert "'shadow_summary'" in str(missing.value) and "GROUP BY" not in str(missing.value)  # not the query again


def test_an_unreachable_server_is_a_store_error_naming_it() -> None:
    with pytest.raises(StoreError, match=r"cannot reach ClickHouse http://127.0.0.1:9"):
        open_clickhouse("http://reader:secret@127.0.0.1:9/otel")


# --- score, reading over HTTP and writing over OTLP ------------------------------------------------------


def test_score_over_http_reads_pairs_and_content_and_sends_scores_over_otlp(
    server: ClickHouseHTTPServer, chdb_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``otel-shadow score --clickhouse http://… --otlp-endpoint …``: the pairs, their content and the scores
    already there read through the driver; the scores back in otel_traces are seen; a second run scores none."""
    from otel_shadow.testing import LLMServer

    from .test_score_clickhouse import OTLPReceiver, _judge_calls, _write_spans

    rows = ClickHouseExporterRows(chdb_folder, "scoring_http")
    rows.connection.query("TRUNCATE TABLE `scoring_http`.`otel_traces`")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(rows))
    _write_spans(provider)
    provider.shutdown()
    main(["clickhouse-views", "--clickhouse", server.clickhouse_url("scoring_http", "admin", "admin-secret")])
    assert "created view shadow_scores" in capsys.readouterr().out
    url = server.clickhouse_url("scoring_http", "reader", "reader-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    receiver = OTLPReceiver()
    try:
        with LLMServer() as llm:
            command = [
                "score",
                "--clickhouse",
                url,
                "--otlp-endpoint",
                f"127.0.0.1:{receiver.port}",
                "--otlp-insecure",
                "--judge-model",
                "sim-judge",
                "--judge-base-url",
                llm.openai_url,
                "--embeddings",
                llm.openai_url,
                "--embedding-model",
                "sim-embed",
                "--format",
                "json",
            ]
            main(command)
            summary = json.loads(capsys.readouterr().out)
            assert summary["to_score"] == 10 and summary["scored"] == {"semantic_similarity": 10, "judge": 10}
            assert len(receiver.spans) == 20
            stored = ClickHouseExporterRows(chdb_folder, "scoring_http")  # the Collector's exporter stores them
            stored.export(receiver.spans)
            stored.shutdown()
            with open_clickhouse(url) as reader:
                scored = reader.query("SELECT scorer, count() FROM shadow_scores GROUP BY ALL ORDER BY ALL").rows
            assert scored == [("judge", 10), ("semantic_similarity", 10)]
            before = _judge_calls(llm)
            main(command)
            again = json.loads(capsys.readouterr().out)
            assert again["to_score"] == 0 and _judge_calls(llm) == before and len(receiver.spans) == 20
    finally:
        receiver.stop()
    assert any(q["user"] == "reader" and "otel_traces" in q["query"] for q in server.queries)  # content over HTTP


# --- the test server speaks the HTTP interface as a server does -----------------------------------------


def test_the_driver_inserts_native_blocks_and_reads_them_back(server: ClickHouseHTTPServer) -> None:
    """clickhouse-connect's insert (Native, compressed body) and query (Native) round-trip through the server."""
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=server.port, username="admin", password="admin-secret"
    )
    try:
        client.command("CREATE DATABASE IF NOT EXISTS http_scratch")
        client.command(
            "CREATE OR REPLACE TABLE http_scratch.t (id UInt32, name LowCardinality(String), "
            "attributes Map(String, String), at DateTime64(9)) ENGINE = MergeTree ORDER BY id"
        )
        rows = [[i, f"n{i % 3}", {"k": str(i)}, datetime(2026, 11, 29, 12, 0, i)] for i in range(50)]
        summary = client.insert("http_scratch.t", rows, column_names=["id", "name", "attributes", "at"])
        assert summary.written_rows == 50
        back = client.query("SELECT id, name, attributes, at FROM http_scratch.t ORDER BY id").result_rows
    finally:
        client.close()
    assert [list(r) for r in back] == rows


def test_responses_are_gzip_when_asked_and_settings_it_does_not_know_are_404(server: ClickHouseHTTPServer) -> None:
    request = urllib.request.Request(
        f"{server.url}/?enable_http_compression=1", data=b"SELECT number FROM numbers(3)", method="POST"
    )
    request.add_header("Accept-Encoding", "gzip")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(response.read()) == b"0\n1\n2\n"
        assert json.loads(response.headers["X-ClickHouse-Summary"])["read_rows"] == "3"
    status, headers, body = _post(server, "SELECT 1", no_such_setting="1")
    assert (status, headers["x-clickhouse-exception-code"]) == (404, "115")
    assert body.startswith("Code: 115. DB::Exception: Unknown setting 'no_such_setting'")


def test_a_request_longer_than_the_servers_limit_is_413(chdb_folder: Path) -> None:
    with ClickHouseHTTPServer(chdb_folder, max_request_bytes=1024) as small:
        status, headers, body = _post(small, "SELECT '" + "x" * 2000 + "'", user="default")
    assert (status, headers["x-clickhouse-exception-code"]) == (413, "229")
    assert "(QUERY_IS_TOO_LARGE)" in body


def test_a_query_the_parser_refuses_is_a_400_syntax_error(server: ClickHouseHTTPServer) -> None:
    status, headers, body = _post(server, "SELEC 1", user="default")
    assert (status, headers["x-clickhouse-exception-code"]) == (400, "62")
    assert body.startswith("Code: 62. DB::Exception: Syntax error") and "(SYNTAX_ERROR)" in body
    status, _, body = _post(server, "SELECT {x:UInt8} + 1", user="default", param_x="41")
    assert (status, body) == (200, "42\n")


@pytest.mark.parametrize(
    "sql, what",
    [
        ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "file()"),
        ("SELECT * FROM `file`('/etc/hostname', 'LineAsString')", "file()"),
        ("SELECT file('/etc/hostname')", "file()"),
        ("SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')", "url()"),
        ("SELECT * FROM Python(anything)", "Python()"),
        ("CREATE TABLE leak ENGINE = Memory AS SELECT * FROM s3('http://127.0.0.1:9/x', 'CSV')", "s3()"),
        ("INSERT INTO http_scratch.t FROM INFILE '/etc/hostname' FORMAT LineAsString", "FROM INFILE"),
        ("SYSTEM SHUTDOWN", "SYSTEM statements"),
    ],
)
def test_what_would_reach_past_a_servers_sandbox_is_refused_even_to_a_user_that_may_write(
    server: ClickHouseHTTPServer, sql: str, what: str
) -> None:
    status, headers, body = _post(server, sql)
    assert headers["x-clickhouse-exception-code"] == "497", body
    assert "grants no user" in body and what in body and "(ACCESS_DENIED)" in body
    status, _, body = _post(server, "SELECT 'file(' AS `not a call`, 1 AS remote")  # words in literals and names
    assert (status, body) == (200, "file(\t1\n")
