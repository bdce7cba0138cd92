"""/v1/sql as an attacker would try it: every known escape, and the class each stands for.

The endpoint is safe by construction (a sandboxed DuckDB instance, a READ ONLY transaction that is
always rolled back), with an allow-list on top; these tests send the attacks over real HTTP to a
real collector and check both the answer and that nothing happened (no file read or written, no
row deleted, no view replaced).
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_shadow.collector import Collector
from otel_shadow.collector.sql_endpoint import SqlLimits

from ..store.otlp import pair, request
from .test_otlp import grpc_export, http_url, query


def token_of(collector: Collector) -> str:
    info = json.loads(collector.info_path.read_text())
    token: str = info["sql_token"]
    return token


def sql(collector: Collector, text: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or token_of(collector)}", **kwargs.pop("headers", {})}
    return httpx.post(http_url(collector, "/v1/sql"), json={"sql": text}, headers=headers, timeout=60, **kwargs)


@pytest.fixture
def stored(collector: Collector) -> Collector:
    grpc_export(collector, request(*pair()).SerializeToString())
    return collector


def test_a_query_with_the_collectors_token_returns_rows(stored: Collector) -> None:
    answer = sql(stored, "SELECT count(*) AS n FROM shadow_pairs")
    assert answer.status_code == 200 and answer.json() == {"columns": ["n"], "rows": [[1]]}


def test_without_a_token_set_the_endpoint_still_needs_one_kept_in_a_private_file(stored: Collector) -> None:
    assert httpx.post(http_url(stored, "/v1/sql"), json={"sql": "SELECT 1"}).status_code == 401
    assert sql(stored, "SELECT 1", token="guess").status_code == 401
    mode = stat.S_IMODE(os.stat(stored.info_path).st_mode)
    assert mode == 0o600, oct(mode)
    assert len(token_of(stored)) >= 32


@pytest.mark.parametrize(
    "attack",
    [
        "SELECT content FROM read_text('/etc/passwd')",
        "SELECT content FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "PRAGMA import_database('/tmp')",
        "ATTACH '/tmp/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
    ],
)
def test_nothing_on_the_host_can_be_read(stored: Collector, attack: str) -> None:
    answer = sql(stored, attack)
    assert answer.status_code == 403, answer.text
    assert "root:" not in answer.text and "PATH=" not in answer.text


@pytest.mark.parametrize(
    "template",
    [
        "EXPLAIN ANALYZE COPY (SELECT 'x') TO '{path}'",
        "COPY (SELECT 'x') TO '{path}'",
        "EXPORT DATABASE '{path}'",
        "EXPLAIN ANALYZE COPY spans TO '{path}' (FORMAT parquet)",
    ],
)
def test_no_file_can_be_written(stored: Collector, tmp_path: Path, template: str) -> None:
    target = tmp_path / "written"
    answer = sql(stored, template.format(path=target))
    assert answer.status_code == 403, answer.text
    assert not target.exists()


@pytest.mark.parametrize(
    "attack",
    [
        "DELETE FROM spans",
        "WITH d AS (DELETE FROM spans RETURNING *) SELECT count(*) FROM d",
        "EXPLAIN ANALYZE DELETE FROM spans",
        "SELECT 1; COMMIT; DELETE FROM spans",
        "COMMIT; DELETE FROM spans",
        "UPDATE spans SET experiment = 'x'",
        "EXPLAIN ANALYZE CREATE OR REPLACE VIEW shadow_summary AS SELECT 1 AS pairs",
        "CREATE OR REPLACE VIEW shadow_summary AS SELECT 1 AS pairs",
        "DROP VIEW shadow_pairs",
        "CREATE TEMP TABLE t AS SELECT 1",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "PRAGMA enable_profiling",
        "CALL checkpoint()",
        "PIVOT spans ON role",
        "SELECT 1; SET enable_external_access = true; SELECT * FROM read_text('/etc/passwd')",
    ],
)
def test_nothing_in_the_store_can_be_changed(stored: Collector, attack: str) -> None:
    answer = sql(stored, attack)
    assert answer.status_code == 403, answer.text
    assert query(stored, "SELECT count(*) FROM spans") == [(2,)]
    assert query(stored, "SELECT count(*) FROM shadow_pairs") == [(1,)]
    assert "pairs" in [
        c
        for (c,) in query(
            stored, "SELECT column_name FROM information_schema.columns WHERE table_name = 'shadow_summary'"
        )
    ]


@pytest.mark.parametrize(
    "allowed",
    [
        "SHOW TABLES",
        "DESCRIBE shadow_pairs",
        "FROM shadow_runs LIMIT 1",
        "EXPLAIN SELECT * FROM shadow_pairs",
        "EXPLAIN ANALYZE SELECT count(*) FROM spans",
        "PRAGMA table_info('spans')",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "SUMMARIZE SELECT duration_ms FROM spans",
    ],
)
def test_reading_statements_stay_allowed(stored: Collector, allowed: str) -> None:
    answer = sql(stored, allowed)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),  # a web page's "simple" request needs no preflight
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Origin": "http://evil.example"}, 403),
        ({"Host": "evil.example"}, 403),  # DNS rebinding: a foreign name pointing at loopback
    ],
)
def test_requests_a_web_page_could_send_are_refused(stored: Collector, headers: dict[str, str], status: int) -> None:
    body = json.dumps({"sql": "SELECT count(*) FROM spans"})
    all_headers = {"Authorization": f"Bearer {token_of(stored)}", "Content-Type": "application/json", **headers}
    answer = httpx.post(http_url(stored, "/v1/sql"), content=body, headers=all_headers)
    assert answer.status_code == status, answer.text


def test_the_same_origin_and_loopback_names_are_accepted(stored: Collector) -> None:
    origin = f"http://127.0.0.1:{stored.http_port}"
    assert sql(stored, "SELECT 1", headers={"Origin": origin}).status_code == 200
    assert sql(stored, "SELECT 1", headers={"Host": f"localhost:{stored.http_port}"}).status_code == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(start_collector: Any) -> None:
    collector = start_collector(sql_limits=SqlLimits(max_body_bytes=4096))
    answer = sql(collector, "SELECT '" + "x" * 10_000 + "'")
    assert answer.status_code == 413
    assert sql(collector, "SELECT 1").status_code == 200


def test_a_result_over_the_byte_limit_is_refused_not_held(start_collector: Any) -> None:
    collector = start_collector(sql_limits=SqlLimits(max_result_bytes=1_000_000))
    answer = sql(collector, "SELECT repeat('x', 1000) FROM range(100000)")  # ~100 MB
    assert answer.status_code == 413 and "larger than 1000000 bytes" in answer.json()["error"]
    assert sql(collector, "SELECT repeat('x', 1000) FROM range(100)").status_code == 200


def test_a_long_query_is_stopped_at_the_timeout(start_collector: Any) -> None:
    collector = start_collector(sql_limits=SqlLimits(timeout_s=0.5))
    began = time.monotonic()
    answer = sql(collector, "SELECT count(*) FROM range(100000000000) a")
    assert answer.status_code == 408 and "longer than 0.5 s" in answer.json()["error"]
    assert time.monotonic() - began < 30
    assert sql(collector, "SELECT 1").status_code == 200


def test_a_long_query_does_not_block_other_readers(start_collector: Any) -> None:
    collector = start_collector(sql_limits=SqlLimits(timeout_s=20))
    slow: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: slow.append(sql(collector, "SELECT count(*) FROM range(100000000000) a")))
    thread.start()
    deadline = time.monotonic() + 10
    while collector.sql is not None and collector.sql.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert collector.sql is not None and collector.sql.running == 1
    answer = sql(collector, "SELECT 42")  # answered while the slow one still runs
    assert answer.json()["rows"] == [[42]] and collector.sql.running == 1
    collector.sql.close()  # what shutdown does: the slow query is interrupted
    thread.join(10)
    assert not thread.is_alive() and slow[0].status_code in (400, 503)


def test_queries_beyond_the_concurrency_limit_are_refused_retryably(start_collector: Any) -> None:
    collector = start_collector(sql_limits=SqlLimits(max_concurrency=1, timeout_s=20))
    thread = threading.Thread(target=lambda: sql(collector, "SELECT count(*) FROM range(100000000000) a"))
    thread.start()
    deadline = time.monotonic() + 10
    while collector.sql is not None and collector.sql.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    answer = sql(collector, "SELECT 1")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert collector.sql is not None
    collector.sql.close()
    thread.join(10)


def test_with_an_operator_token_the_endpoint_takes_that_token(start_collector: Any) -> None:
    collector = start_collector(token="s3cret-operator-token")
    assert sql(collector, "SELECT 1", token="s3cret-operator-token").status_code == 200


def test_with_sql_off_there_is_no_endpoint(start_collector: Any) -> None:
    collector = start_collector(sql=False)
    assert httpx.post(http_url(collector, "/v1/sql"), json={"sql": "SELECT 1"}).status_code == 404
    assert json.loads(collector.info_path.read_text())["sql_url"] is None


def test_non_finite_numbers_come_back_as_standard_json(stored: Collector) -> None:
    answer = sql(stored, "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, '-inf'::DOUBLE AS c")
    assert answer.json()["rows"] == [["NaN", "Infinity", "-Infinity"]]
