"""A tier of collectors writing Parquet segments into one folder: routed by trace id, one report
over all the segments is the report of one collector that saw everything; a kill loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_shadow.analysis import build_report
from otel_shadow.collector import Collector
from otel_shadow.store import Store
from otel_shadow.store.segments import open_segments

from ..store.otlp import pair, request
from .test_otlp import http_url
from .test_reliability import LOADER, _start

SPAN_KEYS = "SELECT hex_trace_id(trace_id) || '/' || hex_span_id(span_id) FROM spans"


def _traffic(n_pairs: int, seed: int) -> list[ExportTraceServiceRequest]:
    """Requests of 40 pairs (a primary and its candidate share a trace), with varied latency,
    errors and agreement, and a second experiment, so the verdicts differ."""
    rng = np.random.default_rng(seed)
    requests: list[ExportTraceServiceRequest] = []
    spans: list[Any] = []
    for i in range(n_pairs):
        worse = i % 3 == 0  # the "search" experiment's candidate is slower and sometimes fails
        spans.extend(
            pair(
                experiment="search" if worse else "chat",
                primary_ms=float(rng.lognormal(3, 0.3)),
                candidate_ms=float(rng.lognormal(3.4 if worse else 2.9, 0.3)),
                candidate_hash="aa" if not worse or rng.random() < 0.9 else f"x{i}",
                candidate_outcome="error" if worse and rng.random() < 0.05 else "ok",
            )
        )
        if len(spans) == 80:
            requests.append(request(*spans))
            spans = []
    if spans:
        requests.append(request(*spans))
    return requests


def _split_by_trace(body: ExportTraceServiceRequest, n: int) -> list[ExportTraceServiceRequest]:
    """What the gateway's loadbalancing exporter (routing_key: traceID) does: each span goes to
    the collector its trace id hashes to."""
    parts = [ExportTraceServiceRequest() for _ in range(n)]
    for rs in body.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                target = parts[int.from_bytes(span.trace_id[:8], "big") % n]
                if not target.resource_spans or target.resource_spans[-1].resource != rs.resource:
                    out_rs = target.resource_spans.add()
                    out_rs.resource.CopyFrom(rs.resource)
                    out_rs.scope_spans.add().scope.CopyFrom(ss.scope)
                target.resource_spans[-1].scope_spans[-1].spans.append(span)
    return parts


def _post(client: httpx.Client, collector: Collector, body: ExportTraceServiceRequest) -> None:
    response = client.post(
        http_url(collector), content=body.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 200, response.text


def _close_pipes(proc: subprocess.Popen[str]) -> None:
    if proc.stderr is not None:
        proc.stderr.close()


def _rows(store: Store) -> Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]:
    return lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql))


def test_two_collectors_routed_by_trace_id_give_the_report_of_one_that_saw_everything(
    tmp_path: Path, start_collector: Callable[..., Collector]
) -> None:
    segments = tmp_path / "segments"
    tier = [
        start_collector(db=str(tmp_path / f"tier-{i}.duckdb"), segments=str(segments), segment_seconds=0.5)
        for i in range(2)
    ]
    single = start_collector(db=str(tmp_path / "single.duckdb"))
    traffic = _traffic(1200, seed=11)
    with httpx.Client(timeout=30) as client:
        for n, body in enumerate(traffic, 1):
            _post(client, single, body)
            for collector, part in zip(tier, _split_by_trace(body, 2)):
                if part.resource_spans:
                    _post(client, collector, part)
            if n % 10 == 0:  # besides the schedule's: segments closed mid-stream, whatever the timing
                for collector in tier:
                    assert collector.segments is not None
                    collector.segments.close_now()
        metrics = client.get(http_url(tier[0], "/metrics"), params={"format": "json"}).json()
        assert metrics["segments_closed"] >= 2 and metrics["segment_failures"] == 0  # self-metrics say so
    for collector in [*tier, single]:
        collector.stop(10)
    closed = [c.segments.stats.segments_closed for c in tier if c.segments is not None]
    assert all(n >= 3 for n in closed), f"each collector should close several segments, not {closed}"

    with Store.open(tmp_path / "single.duckdb", read_only=True) as one, open_segments(segments) as many:
        expected, got = build_report(_rows(one)), build_report(_rows(many))
        assert {c.verdict for c in expected.candidates} >= {"PASS", "FAIL"}  # the comparison has teeth
        assert got.to_dict() == expected.to_dict()
        for view in ("shadow_pairs", "shadow_summary", "shadow_coverage"):
            sql = f"SELECT * FROM {view} ORDER BY ALL"
            assert many.query(sql).rows == one.query(sql).rows, view
        assert many.query("SELECT count(*) FROM shadow_pairs").rows == [(1200,)]
    for i in range(2):  # each collector's DuckDB file kept only its ledger: its rows are in segments
        with Store.open(tmp_path / f"tier-{i}.duckdb", read_only=True) as store:
            assert store.query("SELECT count(*) FROM spans").rows == [(0,)]

    # the CLI over the folder: the same report, as JSON
    def cli_report(*where: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "otel_shadow", "report", *where, "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(out.stdout)

    assert cli_report("--segments", str(segments)) == cli_report("--db", str(tmp_path / "single.duckdb"))


def test_kill_9_loses_no_acknowledged_span_and_the_restart_closes_the_rest(tmp_path: Path) -> None:
    db, segments, acked = tmp_path / "c.duckdb", tmp_path / "segments", tmp_path / "acked.txt"
    proc, info = _start(db, "--segments", str(segments), "--segment-seconds", "0.2", "--collector-id", "c1")
    loader = subprocess.Popen(
        [sys.executable, "-c", LOADER, str(info["grpc_port"]), str(acked), str(Path(__file__).parents[2])]
    )
    deadline = time.monotonic() + 60
    while (
        not list(segments.glob("table=spans/*/*/*.parquet"))
        or not acked.exists()
        or len(acked.read_text().split()) < 20
    ):
        assert time.monotonic() < deadline, "no segment closed under load"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _close_pipes(proc)
    loader.wait(30)
    Path(f"{db}.collector.json").unlink(missing_ok=True)  # left behind by the kill

    expected: set[str] = set()
    for line in acked.read_text().split():
        for rs in ExportTraceServiceRequest.FromString(bytes.fromhex(line)).resource_spans:
            for ss in rs.scope_spans:
                expected.update(f"{s.trace_id.hex()}/{s.span_id.hex()}" for s in ss.spans)
    with open_segments(segments) as store:
        in_segments = {row[0] for row in store.query(SPAN_KEYS).rows}
    with Store.open(db, read_only=True) as store:
        in_duckdb = {row[0] for row in store.query(SPAN_KEYS).rows}
        # a segment killed between its files' rename and its close is still claimed: its rows are
        # in both places until the restart writes it again under the same names
        claimed = {
            row[0]
            for row in store.query(
                f"{SPAN_KEYS} WHERE batch_id IN (SELECT b.batch_id FROM otel_shadow_segment_batches b "
                "JOIN otel_shadow_segments s USING (seq) WHERE s.closed_at IS NULL)"
            ).rows
        }
    assert in_segments and in_duckdb, "the kill should find rows both closed and still waiting"
    assert expected <= in_segments | in_duckdb  # every acknowledged span: in a segment, or recoverable
    assert in_segments & in_duckdb <= claimed  # a row leaves DuckDB once its segment is closed, not before

    # the restart closes what waited (a segment left claimed is written again under its own name)
    proc, _ = _start(db, "--segments", str(segments), "--segment-seconds", "60", "--collector-id", "c1")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    _close_pipes(proc)
    with open_segments(segments) as store:
        assert expected <= {row[0] for row in store.query(SPAN_KEYS).rows}
        assert store.query("SELECT count(*) - count(DISTINCT (trace_id, span_id)) FROM spans").rows == [(0,)]
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(0,)]
    assert not list(segments.rglob(".*.tmp"))
