"""The writer: one transaction per group, a batch seen twice stored once, ids round-trip as hex."""

from __future__ import annotations

from pathlib import Path

from otel_shadow.store import Store, Writer

from .otlp import pair, request, span


def test_rows_links_events_and_ledger_are_written(tmp_path: Path) -> None:
    p, c = pair()
    ev = span("with-event", events=[("first_chunk", {"i": 1})])
    with Store.open(tmp_path / "s.duckdb") as store:
        result = Writer(store).write(request(p, c, ev), source="test")
        assert (result.stored, result.duplicate) == (3, False)
        q = store.query
        assert q("SELECT count(*) FROM spans").rows == [(3,)]
        assert q("SELECT count(*), min(link_type) FROM span_links").rows == [(1, "primary")]
        assert q("SELECT name FROM span_events").rows == [("first_chunk",)]
        assert q("SELECT spans, links, events, source FROM ingest_batches").rows == [(3, 1, 1, "test")]
        ids = q("SELECT hex_trace_id(trace_id), hex_span_id(span_id) FROM spans WHERE role = 'primary'").rows
        assert ids == [(p.trace_id.hex(), p.span_id.hex())]


def test_the_same_batch_twice_is_stored_once(tmp_path: Path) -> None:
    req = request(*pair())
    with Store.open(tmp_path / "s.duckdb") as store:
        writer = Writer(store)
        first = writer.write(req.SerializeToString())
        again = writer.write(req.SerializeToString())
        group = writer.commit([writer.prepare(req.SerializeToString()), writer.prepare(request(span("new")))])
        assert not first.duplicate and again.duplicate and again.stored == 0
        assert [r.duplicate for r in group] == [True, False]
        assert store.query("SELECT count(*) FROM spans").rows == [(3,)]
        assert store.query("SELECT count(*) FROM ingest_batches").rows == [(2,)]


def test_duplicate_spans_in_different_batches_count_once_in_the_views(tmp_path: Path) -> None:
    p, c = pair()
    with Store.open(tmp_path / "s.duckdb") as store:
        writer = Writer(store)
        writer.write(request(p, c))
        writer.write(request(p, c, span("other")))  # a client re-sent them inside a larger batch
        assert store.query("SELECT count(*) FROM spans WHERE experiment IS NOT NULL").rows == [(4,)]
        assert store.query("SELECT count(*) FROM shadow_runs").rows == [(2,)]
        assert store.query("SELECT count(*) FROM shadow_pairs").rows == [(1,)]


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store.open(path) as store:
        Writer(store).write(request(*pair()))
    with Store.open(path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM shadow_pairs").rows == [(1,)]


def test_connections_never_print_a_progress_bar(tmp_path: Path) -> None:
    """DuckDB prints a progress bar for queries over 2 s; it would corrupt `sql --format json`."""
    path = tmp_path / "s.duckdb"
    Store.open(path).close()
    with Store.open(path, read_only=True) as store:
        assert store.query("SELECT current_setting('enable_progress_bar') AS on").rows == [(False,)]
        assert store.con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)
