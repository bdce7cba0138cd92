"""Retention: traces older than the limit leave the store (exported to Parquet first when asked),
nothing newer is lost, and a collector does it between its commits while ingest goes on."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pyarrow.dataset as ds
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_shadow import attributes as A
from otel_shadow.cli import main
from otel_shadow.collector import Collector, CollectorConfig
from otel_shadow.errors import ConfigError, StoreError
from otel_shadow.store import Store, Writer
from otel_shadow.store.retention import Retention, parse_duration

from .otlp import request, span

DAY_NS = 86_400 * 10**9
GRPC_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def now_ns() -> int:
    return time.time_ns()


def trace(age_days: float, *, events: bool = True, score: bool = False) -> list[Any]:
    """A primary and its candidate (linked, same trace), aged ``age_days``; optionally a score
    span written now, a child of the candidate (as ``otel-shadow score`` writes it)."""
    trace_id = os.urandom(16)
    start = now_ns() - int(age_days * DAY_NS)
    common = {A.SHADOW_EXPERIMENT: "exp", A.SHADOW_OUTCOME: "ok", A.SHADOW_OUTPUT_HASH: "h"}
    primary = span(
        "primary",
        {**common, A.SHADOW_ROLE: "primary", A.SHADOW_CONFIG_ID: "p"},
        trace_id=trace_id,
        start=start,
        events=[("first_chunk", {})] if events else None,
    )
    candidate = span(
        "candidate",
        {**common, A.SHADOW_ROLE: "candidate", A.SHADOW_CONFIG_ID: "c"},
        trace_id=trace_id,
        start=start + 1000,
        parent=primary.span_id,
        links=[(trace_id, primary.span_id, {A.SHADOW_LINK: "primary"})],
    )
    spans = [primary, candidate]
    if score:
        spans.append(
            span(
                "gen_ai.evaluation judge",
                {A.SHADOW_SCORE_SCORER_ID: "j1", A.GEN_AI_EVALUATION_SCORE_VALUE: 1.0},
                trace_id=trace_id,
                parent=candidate.span_id,
                start=now_ns(),
                links=[(trace_id, primary.span_id, {A.SHADOW_LINK: "score.primary"})],
            )
        )
    return spans


def write(store: Store, traces: list[list[Any]]) -> None:
    writer = Writer(store)
    writer.commit([writer.prepare(request(*spans)) for spans in traces])


def stored(store: Store, table: str) -> set[tuple[str, int]]:
    rows = store.query(f"SELECT hex_trace_id(trace_id), span_id FROM {table}").rows
    return {(t, s) for t, s in rows}


def keys(spans: list[Any]) -> set[tuple[str, int]]:
    return {(s.trace_id.hex(), int.from_bytes(s.span_id, "big")) for s in spans}


def exported(folder: Path, table: str) -> Any:
    return ds.dataset(folder / table, format="parquet", partitioning="hive").to_table()


def test_retention_removes_every_trace_older_than_the_limit_and_nothing_newer(tmp_path: Path) -> None:
    old = [trace(age, score=True) for age in (31, 45, 400)]
    new = [trace(age, score=True) for age in (29, 1, 0)]
    with Store.open(tmp_path / "s.duckdb") as store:
        write(store, old + new)
        report = Retention(store, parse_duration("30d"), chunk_traces=2).run()
        old_spans = [s for t in old for s in t]
        new_spans = [s for t in new for s in t]
        assert stored(store, "spans") == keys(new_spans)
        assert {t for t, _ in stored(store, "span_links")} == {s.trace_id.hex() for s in new_spans}
        assert {t for t, _ in stored(store, "span_events")} == {t[0].trace_id.hex() for t in new}
        # the pairs and scores of old traces are gone, those of new traces all there
        assert store.query("SELECT count(*) FROM shadow_pairs").rows == [(3,)]
        assert store.query("SELECT count(*) FROM shadow_scores").rows == [(3,)]
    assert (report.traces, report.spans, report.links, report.events) == (3, len(old_spans), 2 * 3, 3)


def test_a_trace_is_aged_by_its_first_span_so_a_late_score_goes_with_its_pair(tmp_path: Path) -> None:
    old = trace(60, score=True)  # the score span itself started just now
    with Store.open(tmp_path / "s.duckdb") as store:
        write(store, [old])
        Retention(store, parse_duration("30d")).run()
        assert store.query("SELECT count(*) FROM spans").rows == [(0,)]
        assert store.query("SELECT count(*) FROM shadow_scores").rows == [(0,)]


def test_a_pass_listed_in_the_background_removes_the_same_traces_then_waits(tmp_path: Path) -> None:
    """As a collector runs it: the listing on a thread of its own, steps whenever ``due``."""
    old, new = [trace(40), trace(45, score=True)], [trace(3)]
    with Store.open(tmp_path / "s.duckdb") as store:
        write(store, old + new)
        retention = Retention(store, parse_duration("30d"), list_in_background=True, interval_s=3600)
        deadline = time.monotonic() + 30
        while retention.last_report is None and time.monotonic() < deadline:
            if retention.due():
                retention.step()
            else:
                time.sleep(0.01)
        assert retention.last_report is not None and retention.last_report.traces == 2
        assert stored(store, "spans") == keys([s for t in new for s in t])
        assert not retention.due()  # the next pass waits for the interval


def test_exported_parquet_holds_exactly_the_removed_rows_partitioned_by_day(tmp_path: Path) -> None:
    old = [trace(age) for age in (31, 31.5, 50, 51, 52)]
    new = [trace(2)]
    export = tmp_path / "archive"
    with Store.open(tmp_path / "s.duckdb") as store:
        write(store, old + new)
        before = store.con.sql("SELECT * REPLACE (hex_trace_id(trace_id) AS trace_id) FROM spans").to_arrow_table()
        report = Retention(store, parse_duration("30d"), export_dir=export, chunk_traces=2).run()
    spans = exported(export, "spans")
    old_keys = keys([s for t in old for s in t])
    assert {
        (t, s) for t, s in zip(spans.column("trace_id").to_pylist(), spans.column("span_id").to_pylist())
    } == old_keys
    assert spans.num_rows == len(old_keys) == report.spans  # each removed row exactly once
    # every column as it was in the store, day = the UTC day the trace began
    rows = {(r["trace_id"], r["span_id"]): r for r in spans.to_pylist()}
    originals = [r for r in before.to_pylist() if (r["trace_id"], r["span_id"]) in old_keys]
    assert len(originals) == len(old_keys)
    for original in originals:
        assert {k: v for k, v in rows[(original["trace_id"], original["span_id"])].items() if k != "day"} == original
    for t in old:
        began = dt.datetime.fromtimestamp(t[0].start_time_unix_nano / 1e9, dt.timezone.utc).date().isoformat()
        assert {rows[k]["day"] for k in keys(t)} == {began}
    links = exported(export, "span_links")
    assert set(links.column("linked_trace_id").to_pylist()) == {t[0].trace_id.hex() for t in old}
    assert exported(export, "span_events").num_rows == len(old)
    # the export is private: directories 0700, files 0600
    assert all(p.stat().st_mode & 0o077 == 0 for p in [export, *export.rglob("*")])
    assert not list(export.rglob("*.tmp"))


def test_a_step_run_again_writes_the_same_file_not_a_duplicate(tmp_path: Path) -> None:
    """A crash between the Parquet rename and the commit leaves the rows in the store; running
    again exports the same rows under the same name (replacing the file) and deletes them."""
    export = tmp_path / "archive"
    with Store.open(tmp_path / "s.duckdb") as store:
        write(store, [trace(40)])
        retention = Retention(store, parse_duration("30d"), export_dir=export)
        retention.step()  # the pass's list of traces
        chunk = list(retention._pending)
        store.con.execute("BEGIN TRANSACTION")
        retention._export(store.con, chunk, [])  # written and renamed, then the "crash": no delete, no commit
        store.con.execute("ROLLBACK")
        first = sorted(export.rglob("*.parquet"))
        retention.run()
        assert store.query("SELECT count(*) FROM spans").rows == [(0,)]
    assert sorted(export.rglob("*.parquet")) == first
    assert exported(export, "spans").num_rows == 2


def test_an_export_that_cannot_be_written_deletes_nothing(tmp_path: Path) -> None:
    export = tmp_path / "archive"
    export.mkdir()
    (export / "spans").write_text("a file where the spans folder should be")
    with Store.open(tmp_path / "s.duckdb") as store:
        write(store, [trace(40)])
        with pytest.raises(StoreError, match="nothing was deleted|cannot create the export directory"):
            Retention(store, parse_duration("30d"), export_dir=export).run()
        assert store.query("SELECT count(*) FROM spans").rows == [(2,)]


def test_dry_run_counts_and_removes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.duckdb"
    with Store.open(db) as store:
        write(store, [trace(40), trace(50), trace(1)])
    main(["retention", "--db", str(db), "--older-than", "30d", "--dry-run", "--format", "json"])
    out = capsys.readouterr().out
    assert '"traces": 2' in out and '"spans": 4' in out and '"dry_run": true' in out
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(6,)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "30",
        "d",
        "-1d",
        "0d",
        "1.5d",
        "30 days",
        "1e3d",
        "３０d",
        "9999999999d",
        "36500000d",
        "30d; DROP TABLE spans",
    ],
)
def test_a_bad_duration_is_refused_naming_the_value_and_the_form(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_duration(text)
    message = str(error.value)
    assert "30d" in message or "longer than" in message


def test_the_cli_names_a_bad_duration_and_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.duckdb"
    with Store.open(db) as store:
        write(store, [trace(40)])
    with pytest.raises(SystemExit) as exit_code:
        main(["retention", "--db", str(db), "--older-than", "thirty days"])
    assert exit_code.value.code == 2
    assert "'thirty days' is not a duration" in capsys.readouterr().err
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(2,)]


def test_the_cli_refuses_a_file_a_collector_holds_and_names_the_fix(tmp_path: Path) -> None:
    db = str(tmp_path / "c.duckdb")
    collector = Collector(CollectorConfig(db=db, grpc_port=0, http_port=0, decode_workers=0, stats_interval_s=3600))
    collector.start()
    try:  # another process, as a user's shell would be (DuckDB shares one database per process)
        out = subprocess.run(
            [sys.executable, "-m", "otel_shadow", "retention", "--db", db, "--older-than", "30d"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        collector.stop(5)
    assert out.returncode == 2
    assert "held by a running collector" in out.stderr
    assert f"otel-shadow collector --db {db} --retention 30d" in out.stderr


def export_over_grpc(port: int, body: bytes) -> ExportTraceServiceResponse:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        call: Any = channel.unary_unary(GRPC_EXPORT, request_serializer=None, response_deserializer=None)
        return ExportTraceServiceResponse.FromString(call(body, timeout=30))
    finally:
        channel.close()


def test_a_collector_removes_exactly_what_is_older_while_ingest_goes_on(tmp_path: Path) -> None:
    """A real collector on loopback receives OTLP the whole time retention runs in its writer:
    every request is acknowledged, every newer span stored, every older one gone, and the export
    holds exactly the removed rows."""
    db, export = tmp_path / "c.duckdb", tmp_path / "archive"
    old = [trace(31 + i % 5) for i in range(270)]
    with Store.open(db) as store:
        write(store, old[:250])  # the backlog retention finds at start
    collector = Collector(
        CollectorConfig(
            db=str(db),
            grpc_port=0,
            http_port=0,
            decode_workers=0,
            stats_interval_s=3600,
            retention_s=30 * 86400,
            retention_export=str(export),
            retention_interval_s=0.05,
        )
    )
    assert collector.config.retention_s is not None
    collector.start()
    assert collector.retention is not None and collector.grpc is not None
    collector.retention.chunk_traces = 10  # many small steps, between the commits below
    new: list[list[Any]] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def send() -> None:
        try:
            for i in range(60):
                t = trace(i % 29)
                body = request(*t) if i % 3 else request(*t, *old[250 + i // 3])  # a late old trace now and then
                response = export_over_grpc(collector.grpc.port, body.SerializeToString())  # type: ignore[union-attr]
                assert not response.HasField("partial_success")
                new.append(t)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    sender = threading.Thread(target=send)
    sender.start()
    steps_during_ingest = 0
    while not done.wait(0.01):
        steps_during_ingest = len(collector.pipeline.stats.maintenance_ms)
    sender.join()
    assert failures == []
    deadline = time.monotonic() + 30
    live = collector._store
    assert live is not None
    older = "SELECT count(*) FROM spans WHERE start_time < ?"
    cutoff = [dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=30)]
    while live.query(older, cutoff).rows != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.query(older, cutoff).rows == [(0,)]
    remaining = stored(live, "spans")
    collector.stop(5)
    assert steps_during_ingest > 0  # retention steps ran between the commits of live traffic
    assert remaining == keys([s for t in new for s in t])  # nothing newer lost, nothing older left
    removed = keys([s for t in old for s in t])
    spans = exported(export, "spans")
    assert {
        (t, s) for t, s in zip(spans.column("trace_id").to_pylist(), spans.column("span_id").to_pylist())
    } == removed
    assert spans.num_rows == len(removed)


def test_a_collector_warns_when_other_users_can_read_its_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    db = folder / "c.duckdb"
    with Store.open(db):
        pass
    db.chmod(0o644)
    collector = Collector(
        CollectorConfig(db=str(db), grpc_port=0, http_port=0, decode_workers=0, stats_interval_s=3600)
    )
    with caplog.at_level("WARNING", logger="otel_shadow.collector"):
        collector.start()
        collector.stop(5)
    assert any("other users of this machine can read the database" in r.getMessage() for r in caplog.records)
    folder.chmod(0o700)  # the documented fix: the folder lets no one else in
    caplog.clear()
    collector = Collector(
        CollectorConfig(db=str(db), grpc_port=0, http_port=0, decode_workers=0, stats_interval_s=3600)
    )
    with caplog.at_level("WARNING", logger="otel_shadow.collector"):
        collector.start()
        collector.stop(5)
    assert not any("can read the database" in r.getMessage() for r in caplog.records)
