"""Compaction: a partition's segments merged into one, atomically, beside a collector that keeps writing."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from otel_shadow.cli import main
from otel_shadow.errors import ConfigError, StoreError
from otel_shadow.store import Store, Writer
from otel_shadow.store.compaction import STEPS, compact_segments
from otel_shadow.store.segments import SegmentWriter, list_segment_files, open_segments

from .test_segments import NOON, _report, _requests, _roles_per_row_group

HOUR = "date=2026-11-29/hour=12"


class Crash(Exception):
    """Stands for a kill at one step of a compaction."""


def _collect(root: Path, db: Path, bodies: list[bytes], *, per_segment: int, start: dt.datetime = NOON) -> None:
    """A collector writing ``bodies`` and closing a segment every ``per_segment`` requests, the
    first half in one hour, the rest in the next (so two partitions)."""
    with Store.open(db) as store:
        writer, segments = Writer(store), SegmentWriter(store, root, collector_id=db.stem)
        for i, body in enumerate(bodies):
            writer.write(body)
            if (i + 1) % per_segment == 0:
                segments.close_segment(start + dt.timedelta(hours=int(2 * i >= len(bodies))))
        segments.close_segment(start + dt.timedelta(hours=1))


def _files(root: Path, table: str = "spans") -> list[str]:
    return sorted(p.name for p in root.glob(f"table={table}/*/*/*.parquet"))


def _counts(root: Path) -> tuple[int, int, int]:
    """(spans, distinct spans, links) a reader counts."""
    with open_segments(root) as store:
        spans = store.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").rows[0]
        links = store.query("SELECT count(*) FROM span_links").rows[0][0]
    return int(spans[0]), int(spans[1]), int(links)


@pytest.fixture
def segmented(tmp_path: Path) -> tuple[Path, dict[str, object], tuple[int, int, int]]:
    """Two collectors' segments (8 of them over two hours) and their report."""
    bodies = _requests(400, seed=21)  # 8 requests of 50 pairs
    _collect(tmp_path / "seg", tmp_path / "c1.duckdb", bodies[::2], per_segment=1)
    _collect(tmp_path / "seg", tmp_path / "c2.duckdb", bodies[1::2], per_segment=1)
    root = tmp_path / "seg"
    with open_segments(root) as store:
        expected = _report(store)
    return root, expected, _counts(root)


def test_compaction_merges_each_partitions_segments_into_one_and_the_report_is_unchanged(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]],
) -> None:
    root, expected, counts = segmented
    before = _files(root)
    assert len(before) == 8 and counts == (800, 800, 400)
    results = compact_segments(root)
    assert sorted(r.partition for r in results) == ["date=2026-11-29/hour=12", "date=2026-11-29/hour=13"]
    assert sum(len(r.inputs) for r in results) == 8 and sum(r.spans for r in results) == 800
    for table in ("spans", "span_links", "ingest_batches"):  # one file per table and partition
        files = _files(root, table)
        assert len(files) == 2 and all(f.startswith("compacted-") for f in files), (table, files)
    assert not list(root.rglob(".*.tmp"))
    assert _counts(root) == counts
    with open_segments(root) as store:
        assert _report(store) == expected
    assert compact_segments(root) == []  # nothing left to merge


def test_a_compacted_segments_row_groups_each_hold_one_role_as_the_segments_did(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]],
) -> None:
    root, _, _ = segmented
    compact_segments(root)
    for path in root.glob("table=spans/*/*/compacted-*.parquet"):
        groups = _roles_per_row_group(path)
        assert len(groups) > 1 and all(len(roles) == 1 for roles in groups), (path, groups)


def test_a_compacted_segment_and_new_segments_are_merged_again_under_one_manifest(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]], tmp_path: Path
) -> None:
    root, _, (spans, _, links) = segmented
    first = compact_segments(root, partitions={HOUR})[0]
    _collect(root, tmp_path / "c3.duckdb", _requests(100, seed=22), per_segment=1)  # more segments in hour 12
    second = compact_segments(root, partitions={HOUR})[0]
    assert first.name in second.inputs and second.name != first.name
    assert [p.name for p in (root / "table=spans" / HOUR).iterdir()] == [f"{second.name}.parquet"]
    assert _counts(root) == (spans + 200, spans + 200, links + 100)


@pytest.mark.parametrize("step", STEPS)
def test_a_compaction_stopped_after_any_step_neither_loses_nor_duplicates_a_row(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]], step: str
) -> None:
    root, expected, counts = segmented

    def crash(partition: str, at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        compact_segments(root, on_step=crash)
    assert _counts(root) == counts  # the reader sees the inputs or the output, never both
    with open_segments(root) as store:
        assert _report(store) == expected
    compact_segments(root)  # the next run finishes (or redoes) the work
    assert _counts(root) == counts
    for table in ("spans", "span_links", "ingest_batches"):
        assert len(_files(root, table)) == 2, (table, _files(root, table))
    assert not list(root.rglob(".*.tmp"))


def test_segments_a_collector_closes_during_a_compaction_are_left_untouched(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]], tmp_path: Path
) -> None:
    root, _, (spans, _, links) = segmented
    late = tmp_path / "late.duckdb"
    new: list[Path] = []

    def collector_writes(partition: str, at: str) -> None:
        if partition == HOUR and at in ("written", "committed"):  # between the listing and the removal
            with Store.open(late) as store:
                Writer(store).write(_requests(10, seed=30 + len(new))[0])
                info = SegmentWriter(store, root, collector_id="late").close_segment(NOON)
            assert info is not None
            new.extend(info.files)

    compact_segments(root, on_step=collector_writes)
    assert len(new) == 6 and all(p.exists() for p in new)  # 2 segments × (spans, links, ingest_batches)
    assert sorted(p.name for p in (root / "table=spans" / HOUR).iterdir())[1:] == [
        "late-0000000001.parquet",
        "late-0000000002.parquet",
    ]
    assert _counts(root) == (spans + 40, spans + 40, links + 20)


def test_a_segment_in_the_middle_of_being_written_is_neither_merged_nor_removed(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]],
) -> None:
    root, _, _ = segmented
    links = root / "table=span_links" / HOUR
    # a collector has renamed this segment's links file and not yet its spans file (written last)
    shutil.copy(next(links.glob("c1-*.parquet")), links / "c9-0000000001.parquet")
    (root / "table=spans" / HOUR / ".c9-0000000001.parquet.tmp").write_bytes(b"being written")
    compact_segments(root)
    assert (links / "c9-0000000001.parquet").exists()
    assert (root / "table=spans" / HOUR / ".c9-0000000001.parquet.tmp").exists()


def test_a_merged_segment_a_restarted_collector_writes_again_is_not_counted_twice(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]], tmp_path: Path
) -> None:
    root, expected, counts = segmented
    # killed after renaming its files, before marking the segment closed: the collector's next
    # start writes the segment again under the same name, possibly after it was merged
    saved = {p: p.read_bytes() for p in root.glob("table=*/" + HOUR + "/c1-0000000001.parquet")}
    assert len(saved) == 3
    compact_segments(root)
    for path, data in saved.items():
        path.write_bytes(data)
    assert _counts(root) == counts
    with open_segments(root) as store:
        assert _report(store) == expected
    compact_segments(root)  # and the next compaction removes the copies
    assert not any(p.exists() for p in saved)


def test_segments_of_an_older_schema_are_merged_with_the_missing_column_as_null(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]],
) -> None:
    root, _, _ = segmented
    older = next((root / "table=spans" / HOUR).glob("c1-*.parquet"))
    table = pq.read_table(older)
    pq.write_table(table.drop_columns(["gen_ai_request_model"]), older)  # as an older version wrote it
    with open_segments(root) as store:
        expected = store.query("SELECT count(*), count(gen_ai_request_model) FROM spans").rows
    compact_segments(root)
    with open_segments(root) as store:
        assert store.query("SELECT count(*), count(gen_ai_request_model) FROM spans").rows == expected


def test_only_one_compaction_runs_at_a_time_and_a_missing_folder_is_a_clear_error(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]], tmp_path: Path
) -> None:
    root, _, counts = segmented
    errors: list[BaseException] = []
    inside = threading.Event()
    release = threading.Event()

    def hold(partition: str, at: str) -> None:
        inside.set()
        release.wait(30)

    first = threading.Thread(target=lambda: compact_segments(root, on_step=hold))
    first.start()
    try:
        assert inside.wait(30)
        try:
            compact_segments(root)
        except StoreError as exc:
            errors.append(exc)
    finally:
        release.set()
        first.join(30)
    assert len(errors) == 1 and "another compaction" in str(errors[0])
    assert _counts(root) == counts
    with pytest.raises(StoreError, match="does not exist"):
        compact_segments(tmp_path / "missing")


def test_a_file_that_is_not_parquet_stops_the_compaction_with_its_name_and_nothing_changes(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]],
) -> None:
    root, _, _ = segmented
    bad = root / "table=span_links" / HOUR / "c1-0000000002.parquet"
    bad.write_bytes(b"PAR1 not parquet at all")
    before = sorted(str(p) for p in root.rglob("*.parquet"))
    with pytest.raises(StoreError, match="c1-0000000002.parquet"):
        compact_segments(root, partitions={HOUR})
    assert sorted(str(p) for p in root.rglob("*.parquet")) == before
    assert not list(root.rglob(".*.tmp"))
    assert list_segment_files(root)["spans"]


def test_a_parquet_file_of_other_data_among_segments_is_refused_by_the_reader(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]],
) -> None:
    root, _, _ = segmented
    pq.write_table(pa.table({"secret": [1]}), root / "table=spans" / HOUR / "x-0000000001.parquet")
    with pytest.raises(StoreError, match=r"x-0000000001.parquet.*not a segment of table spans.*trace_id"):
        open_segments(root)


def test_the_compact_segments_command_leaves_the_report_command_unchanged(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, _ = segmented
    main(["report", "--segments", str(root), "--format", "json"])
    before = json.loads(capsys.readouterr().out)
    main(["compact-segments", str(root), "--partition", HOUR])
    out = capsys.readouterr().out
    assert f"{HOUR}: 4 segments -> compacted-" in out and "400 spans" in out
    assert len(_files(root)) == 5  # hour 12 merged, hour 13's four left
    main(["report", "--segments", str(root), "--format", "json"])
    assert json.loads(capsys.readouterr().out) == before
    main(["compact-segments", str(root), "--min-segments", "5"])
    assert "nothing to compact" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["compact-segments", str(root), "--partition", "hour=12"])
    assert exit_info.value.code == 2 and "is not date=YYYY-MM-DD/hour=HH" in capsys.readouterr().err


def test_compactions_running_while_a_collector_thread_closes_segments_lose_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "seg"
    bodies = _requests(300, seed=50)  # 6 requests of 50 pairs, each closed as its own segment
    stop = threading.Event()
    failures: list[BaseException] = []

    def collector() -> None:
        try:
            with Store.open(tmp_path / "live.duckdb") as store:
                writer, segments = Writer(store), SegmentWriter(store, root, collector_id="live")
                for body in bodies:
                    writer.write(body)
                    segments.close_segment(NOON)
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            stop.set()

    root.mkdir()
    thread = threading.Thread(target=collector)
    thread.start()
    runs = 0
    while not stop.is_set() or runs == 0:
        compact_segments(root)  # whatever the collector closed so far, in the same partition
        runs += 1
        stop.wait(0.01)
    thread.join(30)
    assert not failures
    compact_segments(root)
    assert _counts(root) == (600, 600, 300)
    assert [p.name.startswith("compacted-") for p in (root / "table=spans" / HOUR).iterdir()] == [True]


def test_a_compacted_file_without_a_readable_manifest_is_refused_and_the_id_compacted_is_reserved(
    segmented: tuple[Path, dict[str, object], tuple[int, int, int]], tmp_path: Path
) -> None:
    root, _, _ = segmented
    source = next((root / "table=spans" / HOUR).glob("c1-*.parquet"))
    shutil.copy(source, source.parent / f"compacted-{'0' * 32}.parquet")  # no manifest in its footer
    with pytest.raises(StoreError, match=r"compacted-0{32}.parquet' has no readable manifest"):
        open_segments(root)
    with Store.open(tmp_path / "x.duckdb") as store, pytest.raises(ConfigError, match="reserved"):
        SegmentWriter(store, root, collector_id="compacted")
