"""Store throughput and report speed (issue 3's bars), with a naive baseline measured in the same run.

  * writer: prepared OTLP requests (1000 spans × 15 attributes) → DuckDB, one core: target ≥ 30k spans/s;
    baseline: a naive writer that inserts each span row by row (executemany)
  * where the writer's time goes: protobuf parse, attribute conversion, Arrow build, INSERT + COMMIT
  * `otel-shadow report` over 1M pairs: target ≤ 2 s

Run: python benchmarks/bench_store.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _harness import save
from _otlp_fixtures import make_request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_shadow.store import Store, Writer, wire
from otel_shadow.store.rows import attributes_dict, request_to_rows


def naive_writer(store: Store, payloads: list[bytes]) -> float:
    """Row-by-row: decode each span to a tuple and executemany (what a first attempt looks like)."""
    con = store.con
    con.execute(
        "CREATE TABLE naive (trace_id VARCHAR, span_id UBIGINT, name VARCHAR, start BIGINT, end_ns BIGINT, attributes VARCHAR)"
    )
    started = time.perf_counter()
    n = 0
    for payload in payloads:
        request = ExportTraceServiceRequest()
        request.ParseFromString(payload)
        rows = []
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    rows.append(
                        (
                            span.trace_id.hex(),
                            int.from_bytes(span.span_id, "big"),
                            span.name,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            json.dumps(attributes_dict(span.attributes)),
                        )
                    )
        con.execute("BEGIN")
        con.executemany("INSERT INTO naive VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.execute("COMMIT")
        n += len(rows)
    return n / (time.perf_counter() - started)


def writer_throughput(payloads: list[bytes], group: int, folder: str) -> dict[str, float]:
    store = Store.open(os.path.join(folder, f"w{group}.duckdb"))
    writer = Writer(store)
    writer.write(make_request(10, seed=999))  # warm up
    prepare = commit = 0.0
    n = 0
    for i in range(0, len(payloads), group):
        t0 = time.perf_counter()
        prepared = [writer.prepare(p) for p in payloads[i : i + group]]
        t1 = time.perf_counter()
        n += sum(r.stored for r in writer.commit(prepared))
        commit += time.perf_counter() - t1
        prepare += t1 - t0
    store.close()
    return {
        "spans_per_s": n / (prepare + commit),
        "prepare_us_per_span": prepare / n * 1e6,
        "commit_us_per_span": commit / n * 1e6,
    }


def where_time_goes(payload: bytes) -> dict[str, float]:
    """Per span: parsing the view, attribute decoding (cold: every KeyValue new; warm: as cached
    by earlier requests), and the whole conversion to Arrow; plus the cache's hit rate."""
    reps = 10
    out: dict[str, float] = {}
    t = time.perf_counter()
    for _ in range(reps):
        request = wire.parse_request(payload)
    out["parse_us_per_span"] = (time.perf_counter() - t) / reps / 1000 * 1e6
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    wire._cache.clear()
    t = time.perf_counter()
    for span in spans:
        wire.decode_attributes(span.attributes)
    out["attributes_cold_us_per_span"] = (time.perf_counter() - t) / len(spans) * 1e6
    t = time.perf_counter()
    for _ in range(reps):
        for span in spans:
            wire.decode_attributes(span.attributes)
    out["attributes_warm_us_per_span"] = (time.perf_counter() - t) / reps / len(spans) * 1e6
    t = time.perf_counter()
    for _ in range(reps):
        request_to_rows(payload)
    out["rows_us_per_span"] = (time.perf_counter() - t) / reps / len(spans) * 1e6
    return out


def cache_hit_rate(payloads: list[bytes]) -> float:
    """Share of span attributes found already decoded, over the benchmark's requests in order."""
    wire._cache.clear()
    hits = total = 0
    for payload in payloads:
        for rs in wire.parse_request(payload).resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    for raw in span.attributes:
                        total += 1
                        hits += raw in wire._cache
                    wire.decode_attributes(span.attributes)
    return hits / total


def report_speed(pairs: int, folder: str) -> dict[str, float]:
    """Fill a store with `pairs` primary/candidate pairs straight in SQL, then time `otel-shadow report`."""
    path = os.path.join(folder, "report.duckdb")
    store = Store.open(path)
    t = time.perf_counter()
    store.con.execute(
        f"""
        INSERT INTO spans (trace_id, span_id, name, kind, start_time, end_time, duration_ms, status_code,
            service_name, experiment, role, config_id, outcome, output_hash, candidates_scheduled,
            candidates_dropped, gen_ai_usage_input_tokens, gen_ai_usage_output_tokens, batch_id)
        SELECT uuid(), i * 2, 'gen', 1, make_timestamp_ns(1700000000000000000 + i * 1000000),
               make_timestamp_ns(1700000000000000000 + i * 1000000 + 100000000), 50 + (i % 100), 0, 'bench',
               'gen', 'primary', 'P', 'ok', (i % 5)::VARCHAR, 1, 0, 100, 200, 1
        FROM range({pairs}) t(i)
        """
    )
    store.con.execute(
        """
        INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ms,
            status_code, service_name, experiment, role, config_id, outcome, output_hash,
            gen_ai_usage_input_tokens, gen_ai_usage_output_tokens, batch_id)
        SELECT trace_id, span_id + 1, span_id, 'gen', 1, start_time, end_time, duration_ms * 1.1, 0, 'bench',
               'gen', 'candidate', 'C', CASE WHEN span_id % 97 = 0 THEN 'error' ELSE 'ok' END,
               ((span_id // 2) % 4)::VARCHAR, 100, 180, 1
        FROM spans WHERE role = 'primary'
        """
    )
    store.con.execute(
        """
        INSERT INTO span_links SELECT trace_id, span_id, 0, trace_id, parent_span_id, 'primary', NULL, 0, '{}', 1
        FROM spans WHERE role = 'candidate'
        """
    )
    store.con.execute("INSERT INTO ingest_batches VALUES (1, now(), 'bench', 0, 0, 0, 0, 0, 0)")
    fill_s = time.perf_counter() - t
    store.close()
    cli = [sys.executable, "-m", "otel_shadow", "report", "--db", path, "--format", "json"]
    subprocess.run(cli, capture_output=True, check=True)  # warm the page cache
    timings = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run(cli, capture_output=True, text=True, check=True)
        timings.append(time.perf_counter() - t)
    (candidate,) = json.loads(out.stdout)["candidates"]
    assert candidate["metrics"]["pairs"] == pairs, candidate["metrics"]["pairs"]
    return {"pairs": pairs, "fill_s": fill_s, "report_s_best": min(timings), "report_s_median": sorted(timings)[1]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_requests = 10 if args.quick else 40
    payloads = [make_request(1000, seed=i).SerializeToString() for i in range(n_requests)]
    with tempfile.TemporaryDirectory() as folder:
        naive_store = Store.open(os.path.join(folder, "naive.duckdb"))
        naive = naive_writer(naive_store, payloads[: max(2, n_requests // 10)])
        naive_store.close()
        result = {
            "writer_per_request_txn": writer_throughput(payloads, 1, folder),
            "writer_group_commit_10": writer_throughput(payloads, 10, folder),
            "naive_rowwise_spans_per_s": naive,
            "where_time_goes": where_time_goes(payloads[0]),
            "attribute_cache_hit_rate": cache_hit_rate(payloads),
            "report": report_speed(100_000 if args.quick else 1_000_000, folder),
        }
    result["writer_vs_naive"] = result["writer_group_commit_10"]["spans_per_s"] / naive
    path = save("store" + ("-quick" if args.quick else ""), result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
