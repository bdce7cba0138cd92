"""Read-only SQL outside /v1/sql: the local `otel-shadow sql`, and how a reader finds (or waits for) a collector.

The same construction as /v1/sql (tests/collector/test_sql_endpoint.py): a sandboxed DuckDB
instance and a READ ONLY transaction, so a read-only file cannot be used to read or write others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_shadow import DatabaseLocked, QueryTimeout, ReadOnlyQuery, ResultTooLarge
from otel_shadow.access import open_reader
from otel_shadow.store import Store, Writer
from otel_shadow.store.readonly import QueryLimits

from ..store.otlp import pair, request

CLI = [sys.executable, "-m", "otel_shadow"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.duckdb"
    with Store.open(path) as store:
        Writer(store).write(request(*pair()))
    return path


@pytest.mark.parametrize("read_only", [True, False])
def test_a_store_reads_no_file_and_writes_none_through_sql(db: Path, tmp_path: Path, read_only: bool) -> None:
    target = tmp_path / "out.csv"
    with Store.open(db, read_only=read_only) as store:
        for attack in (
            f"EXPLAIN ANALYZE COPY (SELECT 'x') TO '{target}'",
            "SELECT content FROM read_text('/etc/passwd')",
            "WITH d AS (DELETE FROM spans RETURNING *) SELECT count(*) FROM d",
            "EXPLAIN ANALYZE CREATE OR REPLACE VIEW shadow_summary AS SELECT 1 AS x",
        ):
            with pytest.raises(ReadOnlyQuery):
                store.query(attack)
        assert store.query("SELECT count(*) FROM spans").rows == [(2,)]
        assert "pairs" in store.query("SELECT * FROM shadow_summary LIMIT 0").columns
    assert not target.exists()


def test_the_configuration_of_a_store_cannot_be_reopened_from_sql(db: Path) -> None:
    with Store.open(db) as store, pytest.raises(Exception, match="locked"):
        store.con.execute("SET enable_external_access = true")  # even the owner's own connection


def test_query_limits_stop_long_queries_and_refuse_large_results(db: Path) -> None:
    with Store.open(db, read_only=True) as store:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            store.query("SELECT count(*) FROM range(100000000000) a", limits=QueryLimits(timeout_s=0.2))
        with pytest.raises(ResultTooLarge, match="more than 10 rows"):
            store.query("SELECT * FROM range(100)", limits=QueryLimits(max_rows=10))
        with pytest.raises(ResultTooLarge, match="larger than"):
            store.query("SELECT repeat('x', 1000) FROM range(10000)", limits=QueryLimits(max_result_bytes=100_000))
        assert store.query("SELECT 1").rows == [(1,)]  # the store is usable after each refusal


def test_the_cli_refuses_writes_on_a_read_only_file(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "written"
    done = subprocess.run(
        [*CLI, "sql", "--db", str(db), f"EXPLAIN ANALYZE COPY (SELECT 'x') TO '{target}'"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "refused" in done.stderr and "Traceback" not in done.stderr
    assert not target.exists()


def test_the_cli_reaches_a_running_collector_with_the_token_from_its_info_file(start_collector: Any) -> None:
    from .test_otlp import grpc_export

    collector = start_collector()
    grpc_export(collector, request(*pair()).SerializeToString())
    env = {k: v for k, v in os.environ.items() if k != "OTEL_SHADOW_COLLECTOR_TOKEN"}
    done = subprocess.run(
        [*CLI, "sql", "--db", collector.config.db, "--format", "json", "SELECT count(*) AS n FROM spans"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 2}]
    refused = subprocess.run(
        [*CLI, "sql", "--db", collector.config.db, "SELECT * FROM read_text('/etc/passwd')"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert refused.returncode == 2 and "refused" in refused.stderr and "root:" not in refused.stdout


HOLDER = """
import sys, time
from otel_shadow.store import Store
store = Store.open(sys.argv[1], read_only=sys.argv[2] == "ro")
print("ready", flush=True)
time.sleep(float(sys.argv[3]))
"""


@pytest.fixture
def hold(db: Path) -> Iterator[Any]:
    holders: list[subprocess.Popen[str]] = []

    def start(mode: str, seconds: float) -> subprocess.Popen[str]:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), mode, str(seconds)], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        holders.append(holder)
        return holder

    yield start
    for holder in holders:
        with holder:  # closes its pipe and waits
            holder.kill()


def test_a_stale_collector_info_file_is_named_as_stale(db: Path, hold: Any) -> None:
    hold("rw", 60)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    Path(f"{db}.collector.json").write_text(json.dumps({"pid": dead.pid, "sql_url": "http://127.0.0.1:9/v1/sql"}))
    with pytest.raises(DatabaseLocked, match=f"collector process {dead.pid}, which is no longer running"):
        open_reader(str(db))


def test_a_collector_waits_for_a_reader_to_let_go_instead_of_failing(db: Path, hold: Any) -> None:
    from otel_shadow.collector import Collector, CollectorConfig

    reader = hold("ro", 1.5)
    began = time.monotonic()
    collector = Collector(CollectorConfig(db=str(db), grpc_port=0, http_port=0, stats_interval_s=3600))
    collector.start()
    try:
        assert reader.poll() is not None  # it started only once the reader was gone
        assert time.monotonic() - began >= 1.0
    finally:
        collector.stop(2)


def test_a_writer_holding_the_file_is_named_with_its_command_line(db: Path, hold: Any) -> None:
    holder = hold("rw", 60)
    with pytest.raises(DatabaseLocked) as info:
        Store.open(db, lock_wait_s=0.5)
    assert f"held by process {holder.pid} (python" in str(info.value)
