"""Stores of many pairs for the scale benchmarks, written straight in SQL (OTLP would take hours at 10M).

One primary and one candidate per pair (the candidate linked to its primary, as the SDK does),
two experiments, log-normal-ish latencies, 2% / 1% errors, 25% of outputs different, and small
JSON attributes like the SDK's. Written in chunks, each chunk one ingest batch, so a chunk can be
closed into a Parquet segment (``SegmentWriter``) as a collector would. Shared by bench_scale.py
and bench_scale_clickhouse.py, so every store of a comparison holds the same kind of data.
"""

from __future__ import annotations

from collections.abc import Callable

from otel_shadow.store import Store

BASE_NS = 1_700_000_000_000_000_000

_PRIMARIES = """
INSERT INTO spans (trace_id, span_id, name, kind, start_time, end_time, duration_ms, status_code, service_name,
    experiment, role, config_id, outcome, output_hash, output_length, candidates_scheduled, candidates_dropped,
    gen_ai_operation_name, gen_ai_request_model, gen_ai_usage_input_tokens, gen_ai_usage_output_tokens,
    attributes, resource_attributes, batch_id)
SELECT uuid(), i * 2 + 1, 'chat gpt-4o', 3,
       make_timestamp_ns({base} + i * 1000000),
       make_timestamp_ns({base} + i * 1000000 + ((400 + hash(i) % 1200) * 1000000)::BIGINT),
       (400 + hash(i) % 1200)::DOUBLE, 0, 'bench',
       CASE WHEN i % 3 = 0 THEN 'search' ELSE 'chat' END, 'primary', 'P',
       CASE WHEN hash(i * 7) % 50 = 0 THEN 'error' ELSE 'ok' END, (hash(i) % 97)::VARCHAR, 200 + hash(i) % 800,
       1, 0, 'chat', 'gpt-4o', 300 + hash(i) % 200, 100 + hash(i * 3) % 300,
       '{{"http.route": "/v1/chat", "shadow.experiment": "chat", "shadow.role": "primary"}}',
       '{{"service.name": "bench", "deployment.environment": "prod"}}', {batch}
FROM range({start}, {stop}) t(i)
"""
_CANDIDATES = """
INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ms,
    status_code, service_name, experiment, role, config_id, outcome, output_hash, output_length,
    gen_ai_operation_name, gen_ai_request_model, gen_ai_usage_input_tokens, gen_ai_usage_output_tokens,
    attributes, resource_attributes, batch_id)
SELECT trace_id, span_id + 1, span_id, 'chat gpt-5-mini', 3, start_time, end_time,
       duration_ms * (0.8 + (hash(span_id) % 1000) / 2500.0), 0, 'bench', experiment, 'candidate', 'C',
       CASE WHEN hash(span_id) % 100 = 0 THEN 'error' ELSE 'ok' END,
       CASE WHEN hash(span_id * 5) % 4 = 0 THEN 'other' ELSE output_hash END, output_length,
       'chat', 'gpt-5-mini', gen_ai_usage_input_tokens, gen_ai_usage_output_tokens - 20,
       '{{"http.route": "/v1/chat", "shadow.experiment": "chat", "shadow.role": "candidate"}}',
       resource_attributes, batch_id
FROM spans WHERE role = 'primary' AND batch_id = {batch}
"""
_LINKS = """
INSERT INTO span_links SELECT trace_id, span_id, 0, trace_id, parent_span_id, 'primary', NULL, 0,
       '{{"shadow.link": "primary"}}', batch_id
FROM spans WHERE role = 'candidate' AND batch_id = {batch}
"""
_LEDGER = "INSERT INTO ingest_batches VALUES ({batch}, now(), 'bench', {spans}, {pairs}, 0, 0, 0, 0)"


def write_chunk(store: Store, start: int, stop: int, batch: int) -> None:
    """Pairs ``start``..``stop`` as ingest batch ``batch`` (one transaction)."""
    con = store.con
    con.execute("BEGIN TRANSACTION")
    con.execute(_PRIMARIES.format(base=BASE_NS, start=start, stop=stop, batch=batch))
    con.execute(_CANDIDATES.format(batch=batch))
    con.execute(_LINKS.format(batch=batch))
    con.execute(_LEDGER.format(batch=batch, spans=2 * (stop - start), pairs=stop - start))
    con.execute("COMMIT")


def fill(store: Store, pairs: int, chunk: int, after_chunk: Callable[[int], None] | None = None) -> None:
    """``pairs`` pairs in chunks of ``chunk``; ``after_chunk(batch)`` runs after each is committed."""
    for batch, start in enumerate(range(0, pairs, chunk), start=1):
        write_chunk(store, start, min(pairs, start + chunk), batch)
        if after_chunk is not None:
            after_chunk(batch)
