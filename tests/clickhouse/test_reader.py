"""The ClickHouse reader is read-only and bounded by construction, and its dialect rewrites stay in code."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_shadow.clickhouse import ClickHouseLimits, ClickHouseReader, open_clickhouse, parse_url
from otel_shadow.clickhouse.dialect import translate
from otel_shadow.errors import ConfigError, QueryError, QueryTimeout, ReadOnlyQuery, ResultTooLarge, StoreError

from .otel_traces import ClickHouseExporterRows


@pytest.fixture
def reader(chdb_folder: Path) -> Iterator[ClickHouseReader]:
    ClickHouseExporterRows(chdb_folder, "safety").shutdown()
    limits = ClickHouseLimits(timeout_s=1.0, max_result_rows=1000)
    with open_clickhouse(f"chdb:{chdb_folder}?database=safety", limits) as opened:
        yield opened


def _rows_in_otel_traces(chdb_folder: Path) -> int:
    with open_clickhouse(f"chdb:{chdb_folder}?database=safety") as fresh:
        return int(fresh.query("SELECT count() FROM otel_traces").rows[0][0])


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO otel_traces (TraceId) VALUES ('x')",
        "CREATE TABLE t (a Int8) ENGINE = Memory",
        "DROP TABLE otel_traces",
        "ALTER TABLE otel_traces DELETE WHERE 1",
        "SET readonly = 0",
        "SYSTEM SHUTDOWN",
        "/* SELECT */ TRUNCATE TABLE otel_traces",
    ],
)
def test_statements_that_write_are_refused_before_they_reach_clickhouse(
    reader: ClickHouseReader, chdb_folder: Path, sql: str
) -> None:
    with pytest.raises(ReadOnlyQuery, match="read-only"):
        reader.query(sql)
    assert _rows_in_otel_traces(chdb_folder) == 0


def test_a_second_statement_is_refused(reader: ClickHouseReader) -> None:
    with pytest.raises(QueryError, match="one statement at a time"):
        reader.query("SELECT 1; DROP TABLE otel_traces")
    assert reader.query("SELECT ';' AS semicolon; -- a literal and a comment may hold one").rows == [(";",)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 SETTINGS readonly = 0",  # a query's own settings cannot lift readonly
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",  # table functions read the host
        "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
    ],
)
def test_clickhouse_itself_refuses_what_passes_the_first_check(reader: ClickHouseReader, sql: str) -> None:
    with pytest.raises(ReadOnlyQuery, match="readonly mode"):
        reader.query(sql)


def test_results_never_go_to_a_file_on_the_host(reader: ClickHouseReader, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    for sql in (f"SELECT 1 INTO OUTFILE '{target}'", "SELECT 1 FORMAT CSV", "SELECT 1 FORMAT JSON SETTINGS a = 1"):
        with pytest.raises(ReadOnlyQuery, match="refused"):
            reader.query(sql)
    assert not target.exists()
    assert reader.query("SELECT format('{}-{}', 'a', 'b') AS formatted").rows == [("a-b",)]


def test_every_query_runs_readonly_within_its_limits(reader: ClickHouseReader) -> None:
    settings = "SELECT getSetting('readonly'), getSetting('max_execution_time'), getSetting('max_result_rows')"
    assert reader.query(settings).rows == [(1, 1.0, 1000)]


def test_a_query_past_the_time_limit_is_stopped(reader: ClickHouseReader) -> None:
    with pytest.raises(QueryTimeout, match="longer than 1 s"):
        reader.query("SELECT count() FROM numbers_mt(1000000000000)")
    assert reader.query("SELECT 42").rows == [(42,)]  # the next query gets its own answer


def test_a_result_past_the_row_limit_is_refused(reader: ClickHouseReader) -> None:
    with pytest.raises(ResultTooLarge, match="1000 rows"):
        reader.query("SELECT number FROM numbers(100000)")
    assert len(reader.query("SELECT number FROM numbers(1000)").rows) == 1000


def test_sql_errors_name_the_problem(reader: ClickHouseReader) -> None:
    with pytest.raises(QueryError, match="no_such_view"):
        reader.query("SELECT * FROM no_such_view")
    # a database without the views: the error says how to create them
    with pytest.raises(QueryError, match="otel-shadow clickhouse-views --clickhouse URL"):
        reader.query("SELECT * FROM shadow_summary")


def test_urls_name_a_server_or_a_chdb_folder() -> None:
    server = parse_url("https://reader:s%40cret@ch.example.com/otel")
    assert (server.kind, server.host, server.port, server.secure, server.username, server.password, server.database) == (
        "http", "ch.example.com", 8443, True, "reader", "s@cret", "otel"
    )  # fmt: skip
    assert parse_url("http://localhost").port == 8123 and parse_url("http://localhost").database == "default"
    local = parse_url("chdb:/data/ch?database=otel")
    assert (local.kind, local.path, local.database) == ("chdb", "/data/ch", "otel")
    with pytest.raises(ConfigError, match="must start with http://"):
        parse_url("tcp://localhost:9000")
    with pytest.raises(ConfigError, match=r"'otel;drop' in ClickHouse URL 'http://u:\*\*\*@localhost/") as bad:
        parse_url("http://u:topsecret@localhost/otel;drop")
    assert "topsecret" not in str(bad.value)


def test_an_unreachable_server_is_a_clear_error_through_clickhouse_connect() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreError, match=f"cannot reach ClickHouse http://127.0.0.1:{port}"):
        open_clickhouse(f"http://127.0.0.1:{port}/default", ClickHouseLimits(timeout_s=2))


def test_dialect_rewrites_leave_literals_and_comments_alone() -> None:
    sql = "SELECT list(x), 'list(x)', epoch_us(t) -- the primary's list(\nFROM shadow_pairs"
    out = translate(sql)
    assert "groupArray(x)" in out and "'list(x)'" in out and "toUnixTimestamp64Micro(t)" in out
    assert "primary's" not in out  # comments are dropped, so their quotes cannot open a literal
    segment = translate("SELECT r.attributes ->> '$.\"http.route\"' AS route FROM shadow_runs r")
    assert segment == (
        "SELECT if(mapContains(r.attributes, 'http.route'), r.attributes['http.route'], NULL) AS route FROM shadow_runs r"
    )


def test_unnamed_qualified_columns_keep_duckdbs_name_and_the_canary_join_puts_the_canary_side_right() -> None:
    from otel_shadow.analysis.canary import CANARY_SQL

    out = translate(CANARY_SQL)
    assert "c.experiment AS experiment," in out  # ClickHouse would name the column 'c.experiment'
    # the right side is read into the hash table first: with no canary run, the primaries are never read
    assert "FROM shadow_runs r JOIN canary c ON" in out
    assert translate("SELECT\n    t.a,\n    t.b\nFROM t ORDER BY t.a, t.b") == (
        "SELECT\n    t.a AS a,\n    t.b AS b\nFROM t ORDER BY t.a, t.b"
    )
