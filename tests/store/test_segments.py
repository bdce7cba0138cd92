"""Parquet segments: closed from committed rows only, exactly once, readable as one sandboxed store."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from otel_shadow.analysis import build_report
from otel_shadow.errors import ConfigError, ReadOnlyQuery, SchemaTooNew, StoreError
from otel_shadow.store import Store, Writer
from otel_shadow.store.segments import SegmentWriter, list_segment_files, open_segments

from .otlp import pair, request

NOON = dt.datetime(2026, 11, 29, 12, 30, tzinfo=dt.timezone.utc)


def _requests(n: int, seed: int) -> list[bytes]:
    """``n`` pairs with varied latencies, errors and agreement, 50 pairs a request (as a client sends them)."""
    rng = np.random.default_rng(seed)
    spans: list[Any] = []
    bodies: list[bytes] = []
    for i in range(n):
        spans.extend(
            pair(
                primary_ms=float(rng.lognormal(3, 0.4)),
                candidate_ms=float(rng.lognormal(3.1, 0.4)),
                candidate_hash="aa" if rng.random() < 0.8 else f"x{i}",
                candidate_outcome="error" if rng.random() < 0.05 else "ok",
            )
        )
        if len(spans) == 100:
            bodies.append(request(*spans).SerializeToString())
            spans = []
    if spans:
        bodies.append(request(*spans).SerializeToString())
    return bodies


def _write_pairs(writer: Writer, n: int, seed: int) -> None:
    for body in _requests(n, seed):
        writer.write(body)


def _report(store: Store) -> dict[str, object]:
    return build_report(lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql))).to_dict()


def test_a_segment_holds_exactly_the_committed_rows_and_they_leave_the_duckdb_file(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="c1")
        _write_pairs(writer, 150, seed=1)
        spans_before = store.query("SELECT count(*) FROM spans").rows[0][0]
        info = segments.close_segment(NOON)
        assert info is not None and info.spans == spans_before == 300 and info.batches == 3
        assert info.partition == "date=2026-11-29/hour=12"
        assert segments.close_segment(NOON) is None  # nothing new committed: no empty segment
        # moved: the DuckDB file keeps the ledger (a retried request is still recognised), not the rows
        assert store.query("SELECT count(*) FROM spans").rows == [(0,)]
        assert store.query("SELECT count(*) FROM span_links").rows == [(0,)]
        assert store.query("SELECT count(*) FROM ingest_batches").rows == [(3,)]
        assert segments.pending_batches() == 0
    spans_file = tmp_path / "seg/table=spans/date=2026-11-29/hour=12/c1-0000000001.parquet"
    assert spans_file in info.files
    assert pq.read_metadata(spans_file).num_rows == 300
    assert not list((tmp_path / "seg").rglob(".*.tmp"))


def test_the_report_over_segments_equals_the_report_over_the_duckdb_file(tmp_path: Path) -> None:
    bodies = _requests(400, seed=7)
    with Store.open(tmp_path / "plain.duckdb") as plain:
        for body in bodies:
            Writer(plain).write(body)
        expected = _report(plain)
        expected_pairs = plain.query("SELECT * FROM shadow_pairs ORDER BY candidate_span_id").rows
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg")
        for body in bodies[:3]:
            writer.write(body)
        segments.close_segment(NOON)  # the same rows over two segments, in two hours
        for body in bodies[3:]:
            writer.write(body)
        segments.close_segment(NOON + dt.timedelta(hours=1))
    with open_segments(tmp_path / "seg") as store:
        assert _report(store) == expected
        assert store.query("SELECT * FROM shadow_pairs ORDER BY candidate_span_id").rows == expected_pairs
        # the same column types as the DuckDB file's tables, so every view and query runs unchanged
        assert store.query(
            "SELECT typeof(trace_id), typeof(attributes), typeof(start_time) FROM spans LIMIT 1"
        ).rows == [("UUID", "JSON", "TIMESTAMP_NS")]


def test_a_pair_whose_spans_two_collectors_stored_is_one_pair_over_their_segments(tmp_path: Path) -> None:
    primary, candidate = pair()  # routing changed mid-trace: the primary went to c1, the candidate to c2
    for name, span in (("c1", primary), ("c2", candidate)):
        with Store.open(tmp_path / f"{name}.duckdb") as store:
            Writer(store).write(request(span))
            assert store.query("SELECT count(*) FROM shadow_pairs").rows == [(0,)]  # neither sees the pair
            SegmentWriter(store, tmp_path / "seg", collector_id=name).close_segment(NOON)
    with open_segments(tmp_path / "seg") as store:
        assert store.query("SELECT count(*), min(candidate_config_id) FROM shadow_pairs").rows == [(1, "C")]


def test_a_segment_left_claimed_by_a_failure_is_written_again_under_the_same_name(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="c1")
        _write_pairs(writer, 60, seed=2)
        # the spans table's folder cannot be created: the claim commits, the write fails
        blocker = tmp_path / "seg/table=spans"
        blocker.write_text("not a folder")
        with pytest.raises(OSError):
            segments.close_segment(NOON)
        assert store.query("SELECT count(*) FROM spans").rows == [(120,)]  # still in DuckDB, nothing lost
        assert segments.pending_batches() == 2
        blocker.unlink()
        recovered = segments.recover()
        assert [(r.seq, r.name, r.spans) for r in recovered] == [(1, "c1-0000000001", 120)]
        assert store.query("SELECT count(*) FROM spans").rows == [(0,)]
        assert segments.close_segment(NOON) is None  # the claimed batches are not segmented twice
    with open_segments(tmp_path / "seg") as read:
        assert read.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").rows == [(120, 120)]


def test_a_segment_that_failed_to_write_is_finished_by_the_next_one(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="c1")
        _write_pairs(writer, 30, seed=8)
        blocker = tmp_path / "seg/table=spans"
        blocker.write_text("not a folder")  # a full disk, say: the write fails after the claim
        with pytest.raises(OSError):
            segments.close_segment(NOON)
        blocker.unlink()
        _write_pairs(writer, 20, seed=9)
        info = segments.close_segment(NOON)  # finishes segment 1, then closes segment 2
        assert info is not None and (info.seq, info.spans) == (2, 40)
        assert store.query("SELECT count(*) FROM spans").rows == [(0,)]
    files = list_segment_files(tmp_path / "seg")["spans"]
    assert [f.name for f in files] == ["c1-0000000001.parquet", "c1-0000000002.parquet"]
    assert [pq.read_metadata(f).num_rows for f in files] == [60, 40]


def test_two_stores_with_the_same_collector_id_never_overwrite_each_others_segments(tmp_path: Path) -> None:
    for name in ("a", "b"):
        with Store.open(tmp_path / f"{name}.duckdb") as store:
            writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="same")
            _write_pairs(writer, 10, seed=3)
            if name == "a":
                segments.close_segment(NOON)
                continue
            with pytest.raises(StoreError, match="another collector writes segments under the id 'same'"):
                segments.close_segment(NOON)
            assert store.query("SELECT count(*) FROM spans").rows == [(20,)]  # kept, not lost
    assert len(list_segment_files(tmp_path / "seg")["spans"]) == 1


def test_the_collector_id_is_made_once_and_kept_in_the_store(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        first = SegmentWriter(store, tmp_path / "seg").collector_id
    with Store.open(tmp_path / "c.duckdb") as store:
        assert SegmentWriter(store, tmp_path / "seg").collector_id == first
        with pytest.raises(ConfigError, match="letters, digits"):
            SegmentWriter(store, tmp_path / "seg", collector_id="../evil")


def test_sql_over_segments_reads_the_segments_and_no_other_file(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg")
        _write_pairs(writer, 10, seed=4)
        segments.close_segment(NOON)
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"secret": ["s3cret"]}), outside)
    hour = tmp_path / "seg/table=spans/date=2026-11-29/hour=12"
    os.symlink(outside, hour / "link-0000000009.parquet")  # not a segment: never listed
    (hour / ".x-0000000010.parquet.tmp").write_bytes(b"half written")  # not closed: never listed
    with open_segments(tmp_path / "seg") as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(20,)]
        for sql in (
            f"SELECT * FROM read_parquet('{outside}')",
            f"SELECT * FROM read_parquet('{hour / 'link-0000000009.parquet'}')",
            "SELECT * FROM read_text('/etc/passwd')",
            f"SELECT * FROM glob('{tmp_path}/*')",
        ):
            with pytest.raises(ReadOnlyQuery, match="reads no file"):
                store.query(sql)
        with pytest.raises(ReadOnlyQuery):
            store.query(f"COPY spans TO '{tmp_path / 'out.csv'}'")
        with pytest.raises(ReadOnlyQuery):
            store.query("SET enable_external_access = true")
    assert not (tmp_path / "out.csv").exists()


def test_the_segment_layout_is_plain_hive_parquet_for_any_reader(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="c1")
        _write_pairs(writer, 25, seed=5)
        segments.close_segment(NOON)
        _write_pairs(writer, 25, seed=6)
        segments.close_segment(NOON + dt.timedelta(hours=1))
    con = duckdb.connect()  # a plain DuckDB, as an analyst would use it
    try:
        rows = con.execute(
            f"SELECT date, hour, count(*) FROM read_parquet('{tmp_path}/seg/table=spans/*/*/*.parquet', "
            "hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert [(str(d), int(h), n) for d, h, n in rows] == [("2026-11-29", 12, 50), ("2026-11-29", 13, 50)]
    # ids keep their type: Parquet's UUID (16 bytes), not text
    schema = pq.read_schema(next((tmp_path / "seg/table=span_links").rglob("*.parquet")))
    assert str(schema.field("trace_id").type) == str(schema.field("linked_trace_id").type) == "extension<arrow.uuid>"


def _roles_per_row_group(path: Path) -> list[list[str | None]]:
    """Each row group's distinct roles, in file order."""
    with pq.ParquetFile(path) as f:
        return [
            sorted(set(f.read_row_group(i, columns=["role"]).column("role").to_pylist()), key=str)
            for i in range(f.num_row_groups)
        ]


def test_a_segments_spans_are_sorted_by_role_so_a_role_filter_skips_the_other_roles_row_groups(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="c1")
        _write_pairs(writer, 120, seed=3)  # each request holds primaries and candidates interleaved
        store.con.execute(  # a GenAI child span (no role), between them
            "INSERT INTO spans SELECT * REPLACE (999 AS span_id, span_id AS parent_span_id, NULL AS experiment, "
            "NULL AS role, 'chat' AS gen_ai_operation_name) FROM spans "
            "WHERE role = 'primary' LIMIT 1"
        )
        info = segments.close_segment(NOON)
    assert info is not None
    spans_file = next(p for p in info.files if "table=spans" in str(p))
    groups = _roles_per_row_group(spans_file)
    # one role per row group (its min/max statistics exclude every other role), roles in order
    assert groups == [["candidate"], ["primary"], [None]]
    with pq.ParquetFile(spans_file) as f:
        stats = f.metadata.row_group(1).column(f.schema_arrow.get_field_index("role")).statistics
        assert stats.min == stats.max == "primary"
    with open_segments(tmp_path / "seg") as store:
        assert store.query("SELECT role, count(*) FROM spans GROUP BY ALL ORDER BY ALL").rows == [
            ("candidate", 120),
            ("primary", 120),
            (None, 1),
        ]


def test_a_column_null_in_every_segment_is_planned_as_null_and_one_value_anywhere_is_read(tmp_path: Path) -> None:
    query = "SELECT count(*) FROM spans WHERE drop_reasons IS NOT NULL"
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="c1")
        for seed in (8, 10):  # two files: DuckDB plans with one file's statistics, not several's
            _write_pairs(writer, 30, seed=seed)
            segments.close_segment(NOON)
        with open_segments(tmp_path / "seg") as reader:
            assert reader.query(query).rows == [(0,)]
            # known NULL from the footers: the plan reads no file (DuckDB would scan them all)
            plan = "\n".join(str(row[-1]) for row in reader.query(f"EXPLAIN {query}").rows)
            assert "READ_PARQUET" not in plan.upper(), plan
        _write_pairs(writer, 30, seed=9)
        store.con.execute("UPDATE spans SET drop_reasons = 'expired' WHERE span_id = (SELECT min(span_id) FROM spans)")
        segments.close_segment(NOON)
    with open_segments(tmp_path / "seg") as reader:
        assert reader.query(query).rows == [(1,)]
        assert reader.query("SELECT drop_reasons FROM spans WHERE drop_reasons IS NOT NULL").rows == [("expired",)]


def test_segments_missing_a_column_an_older_version_did_not_write_read_it_as_null(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.duckdb") as store:
        writer, segments = Writer(store), SegmentWriter(store, tmp_path / "seg", collector_id="c1")
        _write_pairs(writer, 10, seed=10)
        info = segments.close_segment(NOON)
        _write_pairs(writer, 15, seed=11)
        segments.close_segment(NOON + dt.timedelta(hours=1))
    assert info is not None
    first = next(f for f in info.files if f.parent.parent.parent.name == "table=spans")
    older = pq.read_table(first).drop_columns(["gen_ai_request_model"])
    pq.write_table(older, first)  # as a version without that column wrote it
    with open_segments(tmp_path / "seg") as store:
        assert store.query("SELECT count(*), count(gen_ai_request_model) FROM spans WHERE role IS NOT NULL").rows == [
            (50, 30)
        ]
        assert store.query("SELECT sum(pairs) FROM shadow_summary").rows == [(25,)]


def test_segments_of_a_newer_schema_are_refused_with_what_to_do(tmp_path: Path) -> None:
    hour = tmp_path / "seg/table=spans/date=2026-11-29/hour=12"
    hour.mkdir(parents=True)
    table = pa.table({"trace_id": ["x"]}).replace_schema_metadata({"otel_shadow.schema_version": "99"})
    pq.write_table(table, hour / "future-0000000001.parquet")
    with pytest.raises(SchemaTooNew, match="upgrade otel-shadow"):
        open_segments(tmp_path / "seg")


def test_a_folder_without_segments_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_segments(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no closed segments under"):
        open_segments(tmp_path / "empty")


def test_a_damaged_segment_file_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    hour = tmp_path / "seg/table=spans/date=2026-11-29/hour=12"
    hour.mkdir(parents=True)
    (hour / "c1-0000000001.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(StoreError, match="cannot read the segments under"):
        open_segments(tmp_path / "seg")
