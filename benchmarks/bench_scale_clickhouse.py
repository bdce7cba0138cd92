"""``otel-shadow report`` over N pairs: ClickHouse (chdb, otel_traces + the views) vs the single DuckDB file.

Issue 15's bar: over 10M pairs, the report on ClickHouse takes at most 2x the single file's time
and under 30 s on 2 cores; peak memory is reported for each store.

Both stores hold the same spans. The DuckDB file is filled by ``_scale_data`` (as bench_scale.py);
its spans and links are then written out as the OpenTelemetry Collector's clickhouseexporter
writes them (hex ids, every attribute a string in ``SpanAttributes``, links as Nested arrays) to
Parquet by DuckDB, and loaded into ``otel_traces`` (the exporter's own DDL,
tests/clickhouse/otel_traces.sql) in a chdb folder, where ``create_views`` adds the views. Each
report runs in a fresh process (``--child``), alternating between the stores, so every run pays
the same cold start and its peak RSS is its own.

Run: ``.venv/bin/python benchmarks/bench_scale_clickhouse.py --pairs 100000`` (the lead runs
--pairs 10000000 on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import save
from _scale_data import fill

from otel_shadow.analysis import build_report
from otel_shadow.clickhouse import ClickHouseLimits, create_views, open_clickhouse
from otel_shadow.clickhouse.views import SPAN_TABLE
from otel_shadow.store import Store

ROOT = Path(__file__).parent.parent
EXPORTER_DDL = (ROOT / "tests" / "clickhouse" / "otel_traces.sql").read_text()
DATABASE = "bench"

# otel-shadow's spans and links as the clickhouseexporter's rows (the promoted columns are the
# attributes' values; http.route comes from the attributes' JSON)
_AS_EXPORTER_ROWS = """
COPY (
    WITH links AS (
        SELECT trace_id, span_id,
               list(replace(CAST(linked_trace_id AS VARCHAR), '-', '') ORDER BY link_index) AS trace_ids,
               list(lpad(lower(to_hex(linked_span_id)), 16, '0') ORDER BY link_index) AS span_ids,
               list('' ORDER BY link_index) AS states,
               list(MAP {'shadow.link': link_type} ORDER BY link_index) AS attrs
        FROM span_links GROUP BY trace_id, span_id
    )
    SELECT
        s.start_time                                                      AS "Timestamp",
        replace(CAST(s.trace_id AS VARCHAR), '-', '')                     AS "TraceId",
        lpad(lower(to_hex(s.span_id)), 16, '0')                           AS "SpanId",
        coalesce(lpad(lower(to_hex(s.parent_span_id)), 16, '0'), '')      AS "ParentSpanId",
        ''                                                                AS "TraceState",
        s.name                                                            AS "SpanName",
        'SPAN_KIND_CLIENT'                                                AS "SpanKind",
        s.service_name                                                    AS "ServiceName",
        MAP {'service.name': s.service_name}                              AS "ResourceAttributes",
        map_from_entries(list_filter([
            {'k': 'shadow.experiment', 'v': s.experiment},
            {'k': 'shadow.role', 'v': s.role},
            {'k': 'shadow.config.id', 'v': s.config_id},
            {'k': 'shadow.outcome', 'v': s.outcome},
            {'k': 'shadow.output.hash', 'v': s.output_hash},
            {'k': 'shadow.output.length', 'v': CAST(s.output_length AS VARCHAR)},
            {'k': 'shadow.candidates.scheduled', 'v': CAST(s.candidates_scheduled AS VARCHAR)},
            {'k': 'shadow.candidates.dropped', 'v': CAST(s.candidates_dropped AS VARCHAR)},
            {'k': 'gen_ai.operation.name', 'v': s.gen_ai_operation_name},
            {'k': 'gen_ai.request.model', 'v': s.gen_ai_request_model},
            {'k': 'gen_ai.usage.input_tokens', 'v': CAST(s.gen_ai_usage_input_tokens AS VARCHAR)},
            {'k': 'gen_ai.usage.output_tokens', 'v': CAST(s.gen_ai_usage_output_tokens AS VARCHAR)},
            {'k': 'http.route', 'v': s.attributes ->> '$."http.route"'}
        ], lambda e: e.v IS NOT NULL))                                       AS "SpanAttributes",
        CAST(epoch_ns(s.end_time) - epoch_ns(s.start_time) AS UBIGINT)    AS "Duration",
        CASE s.status_code WHEN 2 THEN 'STATUS_CODE_ERROR' WHEN 1 THEN 'STATUS_CODE_OK'
             ELSE 'STATUS_CODE_UNSET' END                                 AS "StatusCode",
        coalesce(s.status_message, '')                                    AS "StatusMessage",
        coalesce(l.trace_ids, [])                                         AS "Links.TraceId",
        coalesce(l.span_ids, [])                                          AS "Links.SpanId",
        coalesce(l.states, [])                                            AS "Links.TraceState",
        coalesce(l.attrs, [])                                             AS "Links.Attributes"
    FROM spans s LEFT JOIN links l ON l.trace_id = s.trace_id AND l.span_id = s.span_id
) TO '{path}' (FORMAT parquet)
"""
_COLUMNS = (
    "Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes, "
    "SpanAttributes, Duration, StatusCode, StatusMessage, `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, "
    "`Links.Attributes`"
)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(folder: Path, pairs: int, chunk: int) -> dict[str, Any]:
    """The single DuckDB file, and a chdb folder whose otel_traces holds the same spans."""
    import chdb
    import duckdb

    single = folder / "single.duckdb"
    t = time.perf_counter()
    with Store.open(single) as store:
        fill(store, pairs, chunk)
    single_s = time.perf_counter() - t

    t = time.perf_counter()
    rows = folder / "otel_traces.parquet"
    with duckdb.connect(str(single), read_only=True) as con:  # the store's own sandbox forbids COPY TO
        con.execute(_AS_EXPORTER_ROWS.replace("{path}", str(rows)))
    export_s = time.perf_counter() - t

    t = time.perf_counter()
    chdb_folder = folder / "chdb"
    connection = chdb.connect(f"file:{chdb_folder}")
    try:
        connection.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        connection.query(EXPORTER_DDL.replace('"default"."otel_traces"', f"{DATABASE}.otel_traces"))
        connection.query(
            f"INSERT INTO {DATABASE}.otel_traces ({_COLUMNS}) SELECT {_COLUMNS} FROM file('{rows}', Parquet)"
        )
        connection.query(f"OPTIMIZE TABLE {DATABASE}.otel_traces FINAL")  # merged parts, as a server's are by then
    finally:
        connection.close()
    load_s = time.perf_counter() - t
    views = create_views_measured(chdb_folder)
    rows.unlink()
    return {
        **views,
        "single_file_bytes": _size(single),
        "chdb_folder_bytes": _size(chdb_folder),
        "fill_single_s": single_s,
        "export_as_exporter_rows_s": export_s,
        "load_chdb_s": load_s,
    }


def create_views_measured(chdb_folder: Path) -> dict[str, Any]:
    """``create_views`` (which copies otel_traces' spans into otel_shadow_span_rows when it creates
    that table): its seconds, and the narrow table's rows and bytes on disk per row."""
    import chdb

    t = time.perf_counter()
    create_views(f"chdb:{chdb_folder}?database={DATABASE}")
    seconds = time.perf_counter() - t
    connection = chdb.connect(f"file:{chdb_folder}")
    try:
        parts = int(str(connection.query(
            f"SELECT count() FROM system.parts WHERE active AND database = '{DATABASE}' AND table = '{SPAN_TABLE}'", "CSV"
        )).strip())  # fmt: skip
        t = time.perf_counter()  # merged parts, as otel_traces' (and a server's by then)
        connection.query(f"OPTIMIZE TABLE {DATABASE}.{SPAN_TABLE} FINAL")
        optimize_s = time.perf_counter() - t
        sizes: dict[str, tuple[int, int]] = {}
        for table in ("otel_traces", SPAN_TABLE):
            count, size = str(
                connection.query(
                    f"SELECT sum(rows), sum(bytes_on_disk) FROM system.parts "
                    f"WHERE active AND database = '{DATABASE}' AND table = '{table}'",
                    "CSV",
                )
            ).split(",")
            sizes[table] = (int(count), int(size))
    finally:
        connection.close()
    rows, span_bytes = sizes[SPAN_TABLE]
    return {
        "create_views_s": seconds,  # the backfill, when the narrow table was created by this run
        "span_table_parts_before_optimize": parts,
        "optimize_span_table_s": optimize_s,
        "span_table_rows": rows,
        "span_table_bytes": span_bytes,
        "span_table_bytes_per_row": span_bytes / max(rows, 1),
        "otel_traces_rows": sizes["otel_traces"][0],
        "otel_traces_bytes_per_row": sizes["otel_traces"][1] / max(sizes["otel_traces"][0], 1),
    }


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM, which starts again at exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, path: str) -> None:
    """One report in this process; prints seconds, peak RSS and the verdicts as JSON."""
    t0 = time.perf_counter()
    # the time limit is the benchmark's, not a reader's: a loaded machine must not cut a run short
    limits = ClickHouseLimits(timeout_s=1800.0)
    store: Any = open_clickhouse(path, limits) if kind == "clickhouse" else Store.open(path, read_only=True)
    opened = time.perf_counter() - t0
    try:
        t, cpu = time.perf_counter(), time.process_time()
        report = build_report(lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql)))
        seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    finally:
        store.close()
    print(
        json.dumps(
            {
                "open_s": opened,
                "report_s": seconds,
                "report_cpu_s": cpu_seconds,  # both engines run in this process: CPU time of all its threads
                "peak_rss_mib": _peak_rss_mib(),
                "verdicts": {f"{c.experiment}/{c.candidate_config_id}": c.verdict for c in report.candidates},
                "pairs": sum(int(c.metrics["pairs"]) for c in report.candidates),
            }
        )
    )


def measure(folder: Path, rounds: int) -> dict[str, Any]:
    stores = {
        "duckdb_file": ("duckdb", str(folder / "single.duckdb")),
        "clickhouse_chdb": ("clickhouse", f"chdb:{folder / 'chdb'}?database={DATABASE}"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in stores}
    for _ in range(rounds):  # alternating, so machine load lands on both
        for name, (kind, path) in stores.items():
            t = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, path], capture_output=True, text=True, check=True
            )
            run = json.loads(out.stdout)
            run["process_s"] = time.perf_counter() - t
            runs[name].append(run)
            print(name, json.dumps(run), flush=True)
    result: dict[str, Any] = {}
    for name, samples in runs.items():
        result[name] = {
            "report_s": sorted(r["report_s"] for r in samples),
            "report_cpu_s": sorted(r["report_cpu_s"] for r in samples),
            "open_s_median": statistics.median(r["open_s"] for r in samples),
            "process_s_median": statistics.median(r["process_s"] for r in samples),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in samples),
            "verdicts": samples[0]["verdicts"],
            "pairs": samples[0]["pairs"],
        }
    base = statistics.median(result["duckdb_file"]["report_s"])
    result["clickhouse_over_file_ratio"] = statistics.median(result["clickhouse_chdb"]["report_s"]) / base
    result["same_verdicts"] = result["clickhouse_chdb"]["verdicts"] == result["duckdb_file"]["verdicts"]
    result["same_pairs"] = result["clickhouse_chdb"]["pairs"] == result["duckdb_file"]["pairs"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument(
        "--chunk", type=int, default=None, help="Pairs per ingest batch (default: pairs / 20, ≥ 10,000)."
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--folder", default=None, help="Where to build the stores (default: a temporary folder, removed)."
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Measure the stores an earlier run built in --folder (building 10M pairs takes half an hour); "
        "the views are created again, so they are this checkout's.",
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    chunk = args.chunk or max(10_000, args.pairs // 20)
    if args.reuse and not args.folder:
        parser.error("--reuse needs --folder: the folder an earlier run built")
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench-scale-clickhouse-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if args.reuse:  # both stores get this checkout's views (a writable open installs the DuckDB file's)
            with Store.open(folder / "single.duckdb"):
                pass
            views = create_views_measured(folder / "chdb")
            built = {"reused": str(folder), "single_file_bytes": _size(folder / "single.duckdb"),
                     "chdb_folder_bytes": _size(folder / "chdb"), **views}  # fmt: skip
        else:
            built = build(folder, args.pairs, chunk)
        print("built", json.dumps(built), flush=True)
        result = {
            "pairs": args.pairs,
            "chunk": chunk,
            "cores": os.cpu_count(),
            "stores": built,
            **measure(folder, args.rounds),
        }
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    name = "scale-clickhouse-quick" if args.pairs < 1_000_000 else "scale-clickhouse"
    print(f"written to {save(name, result)}")
    assert result["same_pairs"] and result["same_verdicts"], "the two stores gave different pairs or verdicts"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
