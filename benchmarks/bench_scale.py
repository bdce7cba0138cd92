"""``otel-shadow report`` over N pairs: the single DuckDB file vs the same pairs as Parquet segments.

Issue 15's bar: over 10M pairs, the report on segments (read with DuckDB) takes at most 2x the
single file's time and under 30 s on 2 cores; peak memory is reported for each store.

Both stores hold the same generated pairs (``_scale_data``). The segments are made the way a
collector makes them: each chunk is committed to a DuckDB file, then closed into a segment by
``SegmentWriter`` (which also times segment writing). Each report runs in a fresh process
(``--child``), alternating between the stores, so every run pays the same cold start and its peak
RSS is its own.

Run: ``.venv/bin/python benchmarks/bench_scale.py --pairs 100000`` (the lead runs --pairs 10000000
on a quiet machine; it needs about 6 GB of disk at 10M). ``--ingest`` measures instead what
``--segments`` costs a collector's ingest (bench_collector's load, with and without); ``--reuse
--folder F`` measures the stores an earlier run built in F again (give the same --pairs).
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
from otel_shadow.store import Store
from otel_shadow.store.segments import SegmentWriter, open_segments


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(folder: Path, pairs: int, chunk: int) -> dict[str, Any]:
    """The single DuckDB file, and the segments folder, holding the same pairs."""
    single = folder / "single.duckdb"
    t = time.perf_counter()
    with Store.open(single) as store:
        fill(store, pairs, chunk)
    single_s = time.perf_counter() - t

    segments = folder / "segments"
    segment_s = 0.0
    t = time.perf_counter()
    with Store.open(folder / "collector.duckdb") as store:
        writer = SegmentWriter(store, segments, collector_id="bench")

        def close(batch: int) -> None:
            nonlocal segment_s
            started = time.perf_counter()
            writer.close_segment()
            segment_s += time.perf_counter() - started

        fill(store, pairs, chunk, after_chunk=close)
    return {
        "single_file_bytes": _size(single),
        "segments_bytes": _size(segments),
        "segment_files": sum(1 for _ in segments.rglob("*.parquet")),
        "fill_single_s": single_s,
        "fill_and_segment_s": time.perf_counter() - t,
        "segment_writing_s": segment_s,
        "segment_writing_spans_per_s": 2 * pairs / segment_s if segment_s else None,
    }


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM, which starts again at exec; ru_maxrss would carry the
    parent's peak over from the fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, path: str) -> None:
    """One report in this process; prints seconds, peak RSS and the verdicts as JSON."""
    t0 = time.perf_counter()
    store = open_segments(path) if kind == "segments" else Store.open(path, read_only=True)
    opened = time.perf_counter() - t0
    try:
        t = time.perf_counter()
        report = build_report(lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql)))
        seconds = time.perf_counter() - t
    finally:
        store.close()
    peak = _peak_rss_mib()
    print(
        json.dumps(
            {
                "open_s": opened,
                "report_s": seconds,
                "peak_rss_mib": peak,
                "verdicts": {f"{c.experiment}/{c.candidate_config_id}": c.verdict for c in report.candidates},
                "pairs": sum(int(c.metrics["pairs"]) for c in report.candidates),
            }
        )
    )


def compact(folder: Path) -> dict[str, Any]:
    """A copy of the segments folder, compacted (``otel-shadow compact-segments``)."""
    from otel_shadow.store.compaction import compact_segments

    shutil.copytree(folder / "segments", folder / "compacted")
    t = time.perf_counter()
    results = compact_segments(folder / "compacted")
    return {
        "compaction_s": time.perf_counter() - t,
        "partitions": len(results),
        "segments_merged": sum(len(r.inputs) for r in results),
        "bytes_before": sum(r.bytes_before for r in results),
        "bytes_after": sum(r.bytes_after for r in results),
        "files_after": sum(1 for _ in (folder / "compacted").rglob("*.parquet")),
    }


def measure(folder: Path, rounds: int, *, compacted: bool = False) -> dict[str, Any]:
    stores = {
        "duckdb_file": ("duckdb", str(folder / "single.duckdb")),
        "segments": ("segments", str(folder / "segments")),
    }
    if compacted:
        stores["compacted"] = ("segments", str(folder / "compacted"))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in stores}
    for _ in range(rounds):  # alternating, so machine load lands on both
        for name, (kind, path) in stores.items():
            t = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", kind, path], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"the report on {name} failed ({out.returncode}):\n{out.stderr[-4000:]}")
            run = json.loads(out.stdout)
            run["process_s"] = time.perf_counter() - t
            runs[name].append(run)
            print(name, json.dumps(run), flush=True)
    result: dict[str, Any] = {}
    for name, samples in runs.items():
        result[name] = {
            "report_s": sorted(r["report_s"] for r in samples),
            "open_s_median": statistics.median(r["open_s"] for r in samples),
            "process_s_median": statistics.median(r["process_s"] for r in samples),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in samples),
            "verdicts": samples[0]["verdicts"],
            "pairs": samples[0]["pairs"],
        }
    base = statistics.median(result["duckdb_file"]["report_s"])
    seg = statistics.median(result["segments"]["report_s"])
    result["segments_over_file_ratio"] = seg / base
    result["same_verdicts"] = all(result[name]["verdicts"] == result["duckdb_file"]["verdicts"] for name in stores)
    if compacted:
        result["compacted_over_file_ratio"] = statistics.median(result["compacted"]["report_s"]) / base
    return result


def ingest(seconds: float, rounds: int) -> dict[str, Any]:
    """Collector throughput without and with --segments (closing a segment every 5 s, so several
    close during each run), alternating, with bench_collector's load processes."""
    from bench_collector import run

    runs: dict[str, list[dict[str, Any]]] = {"duckdb_only": [], "with_segments": []}
    for _ in range(rounds):
        runs["duckdb_only"].append(run(4, seconds, ["--store-all"]))
        with tempfile.TemporaryDirectory() as folder:
            result = run(4, seconds, ["--store-all", "--segments", folder, "--segment-seconds", "5"])
            with open_segments(folder) as store:  # the rows moved there; the DuckDB file kept the rest
                result["spans_in_segments"] = store.query("SELECT count(*) FROM spans").rows[0][0]
        runs["with_segments"].append(result)
        for name, samples in runs.items():
            print(name, json.dumps(samples[-1]), flush=True)
    return {
        name: {
            "acked_spans_per_s": sorted(r["acked_spans_per_s"] for r in samples),
            "ack_latency_p99_ms": sorted(r["ack_latency_p99_ms"] for r in samples),
            "peak_rss_mib": sorted(r["peak_rss_mib"] for r in samples),
        }
        for name, samples in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument(
        "--chunk", type=int, default=None, help="Pairs per segment (default: pairs / 20, at least 10,000)."
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--folder", default=None, help="Where to build the stores (default: a temporary folder, removed)."
    )
    parser.add_argument(
        "--ingest", action="store_true", help="Measure collector throughput with and without --segments instead."
    )
    parser.add_argument(
        "--compact",
        action="store_true",
        help="Also compact a copy of the segments (compact-segments) and run the report on it too.",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Measure the stores an earlier run built in --folder (single.duckdb, segments/) instead of building.",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="With --ingest: seconds of load per run.")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    if args.ingest:
        result = {"seconds": args.seconds, "cores": os.cpu_count(), **ingest(args.seconds, args.rounds)}
        print(f"written to {save('scale-ingest', result)}")
        return 0
    chunk = args.chunk or max(10_000, args.pairs // 20)  # --compact: pass a small --chunk (many segments)
    if args.reuse and not (args.folder and (Path(args.folder) / "single.duckdb").is_file()):
        parser.error("--reuse needs the --folder of an earlier run (holding single.duckdb and segments/)")
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if args.reuse:
            built = {"reused": str(folder), "segment_files": sum(1 for _ in (folder / "segments").rglob("*.parquet"))}
        else:
            built = build(folder, args.pairs, chunk)
        print("built", json.dumps(built), flush=True)
        if args.compact:
            built["compaction"] = compact(folder)
            print("compacted", json.dumps(built["compaction"]), flush=True)
        result = {
            "pairs": args.pairs,
            "chunk": chunk,
            "cores": os.cpu_count(),
            "stores": built,
            **measure(folder, args.rounds, compacted=args.compact),
        }
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    name = ("scale-quick" if args.pairs < 1_000_000 else "scale") + ("-compact" if args.compact else "")
    print(f"written to {save(name, result)}")
    assert result["same_verdicts"], "the two stores gave different verdicts"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
