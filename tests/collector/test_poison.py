"""Poison is isolated: a span that cannot be stored is rejected through partial_success, never
fails its neighbours' requests, is never refused retryably (so never retried for ever), and never
makes the collector unready. Real collector, real OTLP over loopback, real DuckDB files."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from otel_shadow.collector import Collector
from otel_shadow.store import Prepared, Store, Writer
from otel_shadow.store.rows import Rows

from ..store.otlp import pair, request, span
from .test_otlp import grpc_export, http_url, query

PROTOBUF = {"Content-Type": "application/x-protobuf"}
NEVER = 2**63 - 1  # an end time DuckDB's TIMESTAMP_NS cannot hold (its "infinity")


def test_a_poison_client_gets_partial_success_and_an_innocent_one_loses_nothing(
    start_collector: Callable[..., Collector],
) -> None:
    collector = start_collector(max_wait_ms=20.0)  # wide commit groups: poison and innocent requests share them
    innocent_answers: list[ExportTraceServiceResponse] = []
    poison_answers: list[httpx.Response] = []
    readiness: list[int] = []
    done = threading.Event()

    def innocent() -> None:
        for _ in range(30):
            body = request(*[s for _ in range(10) for s in pair(experiment="innocent")]).SerializeToString()
            innocent_answers.append(ExportTraceServiceResponse.FromString(grpc_export(collector, body)))

    def poison() -> None:
        for _ in range(15):
            bad = span("poison", {"shadow.experiment": "poison", "shadow.role": "primary"})
            bad.end_time_unix_nano = NEVER
            body = request(bad, *pair(experiment="poison")).SerializeToString()
            poison_answers.append(httpx.post(http_url(collector), content=body, headers=PROTOBUF, timeout=30))

    def probe() -> None:
        while not done.is_set():
            readiness.append(httpx.get(http_url(collector, "/readyz")).status_code)
            time.sleep(0.02)

    threads = [threading.Thread(target=t) for t in (innocent, poison)]
    prober = threading.Thread(target=probe)
    prober.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    prober.join()
    assert len(innocent_answers) == 30 and not any(a.HasField("partial_success") for a in innocent_answers)
    assert query(collector, "SELECT count(*) FROM spans WHERE experiment = 'innocent'") == [(600,)]
    assert [a.status_code for a in poison_answers] == [200] * 15  # not 503: the client must not retry it
    for answer in poison_answers:
        partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
        assert partial.rejected_spans == 1 and "end_time_unix_nano" in partial.error_message
    assert query(collector, "SELECT count(*) FROM spans WHERE experiment = 'poison'") == [(30,)]  # its good spans
    assert readiness and set(readiness) == {200}
    assert collector.stats()["commit_failures"] == 0


def _poisoned(prepared: Prepared, rows: list[int]) -> Prepared:
    """``prepared`` with end times DuckDB refuses at COMMIT in span rows ``rows``: what a value
    the prepare-time checks do not know about would do."""
    spans = prepared.rows.spans
    ends = spans.column("end_time").cast(pa.int64()).to_pylist()
    for i in rows:
        ends[i] = NEVER
    spans = spans.set_column(
        spans.schema.get_field_index("end_time"), "end_time", pa.array(ends, pa.int64()).cast(pa.timestamp("ns"))
    )
    r = prepared.rows
    return Prepared(
        Rows(spans, r.links, r.events, r.rejected, r.errors, r.received),
        prepared.batch_id,
        prepared.source,
        prepared.size,
    )


def test_spans_duckdb_refuses_at_commit_fail_alone_and_the_collector_stays_ready(
    start_collector: Callable[..., Collector],
) -> None:
    collector = start_collector(max_wait_ms=200.0, decode_workers=0)
    pipeline = collector.pipeline
    innocent = [
        pipeline.prepare(request(*pair(experiment="innocent")).SerializeToString(), "protobuf", "test")
        for _ in range(3)
    ]
    body = request(*[s for _ in range(20) for s in pair(experiment="poison")]).SerializeToString()
    poison = _poisoned(pipeline.prepare(body, "protobuf", "test"), [3, 17, 38])
    group = [innocent[0], poison, innocent[1], innocent[2]]
    for p in group:
        pipeline.admit(p.size)
    futures = [pipeline.enqueue(p, p.size) for p in group]  # one commit group (200 ms to gather)
    results = [f.result(30) for f in futures]
    assert [(r.stored, r.rejected) for r in results] == [(2, 0), (37, 3), (2, 0), (2, 0)]
    assert all("DuckDB cannot store it" in e for e in results[1].errors) and len(results[1].errors) == 3
    assert pipeline.ready and collector.stats()["commit_failures"] == 0
    # its retry is a duplicate (the ledger row was kept): acknowledged, nothing stored twice
    pipeline.admit(poison.size)
    again = pipeline.enqueue(poison, poison.size).result(30)
    assert again.duplicate and again.stored == 0
    assert query(
        collector, "SELECT experiment, count(*), count(DISTINCT span_id) FROM spans GROUP BY ALL ORDER BY 1"
    ) == [
        ("innocent", 6, 6),
        ("poison", 37, 37),
    ]
    assert query(collector, "SELECT spans, rejected FROM ingest_batches WHERE spans > 2") == [(37, 3)]
    assert httpx.get(http_url(collector, "/readyz")).status_code == 200


def test_a_request_of_nothing_but_poison_is_rejected_whole_within_the_trial_budget(tmp_path: Path) -> None:
    with Store.open(tmp_path / "w.duckdb") as store:
        writer = Writer(store)
        body = request(*[s for _ in range(200) for s in pair()]).SerializeToString()
        everything = _poisoned(writer.prepare(body), list(range(400)))
        good = writer.prepare(request(*pair()))
        poisoned_result, good_result = writer.commit([everything, good])
        assert (poisoned_result.stored, poisoned_result.rejected) == (0, 400)
        assert any("too many spans that cannot be stored" in e for e in poisoned_result.errors)
        assert len(poisoned_result.errors) <= 11  # a bounded message, not 400 of them
        assert (good_result.stored, good_result.rejected) == (2, 0)
        assert store.query("SELECT count(*) FROM spans").rows == [(2,)]
