"""Retention steps and redaction at ingest (issue 14), each beside its baseline in the same run.

  * retention: how long one step holds the writer (the pause ingest sees), delete-only and with the
    Parquet export, on a store of N traces (3 spans, 2 links, 1 event each) half older than the
    limit; baseline: one group commit of 10 requests × 1000 spans into the same store
  * redaction at ingest: µs per span for the five builtins, spans with and without content;
    baseline: decoding the same request (the collector's own per-span cost)

Run: python benchmarks/bench_retention.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _harness import pct, save
from _otlp_fixtures import make_request

from otel_shadow.collector.decode import decode_payload
from otel_shadow.collector.redact import IngestRedactor
from otel_shadow.redaction import BUILTINS, parse_redaction_rules
from otel_shadow.store import Store, Writer
from otel_shadow.store.retention import Retention

sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.store.otlp import request, span  # the tests' OTLP builder


def fill(store: Store, traces: int) -> None:
    """``traces`` traces over 60 days (the newest now), as the collector writes them."""
    step_us = 60 * 86400e6 / traces
    store.con.execute(
        f"""INSERT INTO spans (trace_id, span_id, name, kind, start_time, end_time, duration_ms, status_code,
            service_name, experiment, role, config_id, outcome, output_hash, attributes, resource_attributes, batch_id)
        SELECT md5(CAST(i // 3 AS VARCHAR))::UUID, i, 'exp', 1,
            (now() - to_microseconds(CAST((i // 3) * {step_us} AS BIGINT)))::TIMESTAMP_NS,
            (now() - to_microseconds(CAST((i // 3) * {step_us} AS BIGINT)))::TIMESTAMP_NS,
            10, 0, 'svc', 'exp', CASE i % 3 WHEN 0 THEN 'primary' ELSE 'candidate' END, 'c', 'ok', 'h',
            '{{"shadow.experiment":"exp","gen_ai.request.model":"gpt-4o","gen_ai.usage.input_tokens":120}}',
            '{{"service.name":"svc"}}', i // 300
        FROM range({3 * traces}) t(i) ORDER BY i DESC"""
    )
    store.con.execute(
        "INSERT INTO span_links SELECT trace_id, span_id, 0, trace_id, span_id - 1, 'primary', NULL, 0, '{}', batch_id "
        "FROM spans WHERE span_id % 3 <> 0"
    )
    store.con.execute(
        "INSERT INTO span_events SELECT trace_id, span_id, 0, start_time, 'first_chunk', '{}', batch_id "
        "FROM spans WHERE span_id % 3 = 0"
    )
    store.con.execute("CHECKPOINT")


def retention_steps(traces: int, export: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "r.duckdb") as store:
        fill(store, traces)
        retention = Retention(store, dt.timedelta(days=30), export_dir=Path(folder) / "archive" if export else None)
        steps: list[float] = []
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            more = retention.step()
            steps.append((time.perf_counter() - t0) * 1000)
            if not more:
                break
        total = time.perf_counter() - started
        report = retention.last_report
        assert report is not None
        # the baseline, after the pass (its fixture's spans are from 2023: retention would take them)
        writer = Writer(store)
        batch = [writer.prepare(make_request(1000, seed=i)) for i in range(10)]
        started = time.perf_counter()
        writer.commit(batch)
        commit_ms = (time.perf_counter() - started) * 1000
        chunks = np.asarray(steps[1:-1])  # the chunk steps (not the pass's listing, nor its end)
        rows = report.spans + report.links + report.events
        return {
            "export": export,
            "traces_in_store": traces,
            "traces_removed": report.traces,
            "rows_removed": rows,
            "list_ms": steps[0],  # a collector lists on a thread of its own, off the writer
            "step_ms_p50": pct(chunks, 50),
            "step_ms_p95": pct(chunks, 95),
            "step_ms_max": float(chunks.max()),
            "rows_per_s": rows / total,
            "baseline_group_commit_10x1000_spans_ms": commit_ms,
        }


def redaction_cost(spans_per_request: int, rounds: int) -> dict[str, Any]:
    rules = parse_redaction_rules({"rules": [{"builtin": name} for name in sorted(BUILTINS)]})
    redactor = IngestRedactor(rules)
    text = "Please summarise the note from alice@example.com about order 1234. " * 12
    content = json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])
    out: dict[str, Any] = {"message_chars": len(content)}
    for label, extra in (
        ("without_content", {}),
        ("with_two_messages", {"gen_ai.input.messages": content, "gen_ai.output.messages": content}),
    ):
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            **extra,
        }
        body = request(*[span("chat", attrs) for _ in range(spans_per_request)]).SerializeToString()
        prepared = decode_payload(body, "protobuf", "bench", True)
        decode_us, redact_us = [], []
        for _ in range(rounds):  # alternating, so machine noise lands on both
            t0 = time.perf_counter()
            decode_payload(body, "protobuf", "bench", True)
            decode_us.append((time.perf_counter() - t0) / spans_per_request * 1e6)
            t0 = time.perf_counter()
            redactor(prepared)
            redact_us.append((time.perf_counter() - t0) / spans_per_request * 1e6)
        out[label] = {
            "decode_us_per_span": float(np.median(decode_us)),
            "redact_us_per_span": float(np.median(redact_us)),
            "ratio_to_decode": float(np.median(np.asarray(redact_us) / np.asarray(decode_us))),
        }
    hostile = {}
    for name, text in (("digits", "9" * 16_384), ("letters", "a" * 16_384), ("at_signs", "a@" * 8192)):
        t0 = time.perf_counter()
        rules(text)
        hostile[name] = (time.perf_counter() - t0) * 1000
    out["hostile_16KiB_ms"] = hostile
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    traces = 10_000 if args.quick else 100_000
    result = {
        "retention": [retention_steps(traces, export=False), retention_steps(traces, export=True)],
        "redaction": redaction_cost(128 if args.quick else 512, 5 if args.quick else 20),
    }
    print(json.dumps(result, indent=2))
    save("retention", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
