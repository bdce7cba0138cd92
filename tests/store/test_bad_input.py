"""Bad input gets a clear error and loses nothing: wrong files, newer schemas, locks, full disks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_shadow import DatabaseLocked, NotADatabase, QueryError, ReadOnlyQuery, SchemaTooNew, StoreError
from otel_shadow.store import Store, Writer

from .otlp import pair, request, span

LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from otel_shadow.store import Store
    store = Store.open(sys.argv[1])
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "held.duckdb"
    with Store.open(path) as store:
        Writer(store).write(request(*pair()))
    with subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield path
        holder.kill()  # leaving the with closes its pipe and waits


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n" * 20)
    with pytest.raises(NotADatabase, match="is not a DuckDB database"):
        Store.open(path)
    assert path.read_text().startswith("these are my notes")  # untouched


def test_a_duckdb_file_of_something_else_is_not_taken_over(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE invoices(id INTEGER)")
    con.close()
    with pytest.raises(NotADatabase, match="invoices"):
        Store.open(path)


def test_a_newer_schema_version_is_refused_without_change(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store.open(path) as store:
        Writer(store).write(request(*pair()))
        store.con.execute("UPDATE otel_shadow_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaTooNew, match="schema 99"):
        Store.open(path)
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM spans").fetchone() == (2,)
    con.close()


def test_a_garbled_schema_version_is_a_clear_error_naming_file_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store.open(path) as store:
        store.con.execute("UPDATE otel_shadow_meta SET value = 'one' WHERE key = 'schema_version'")
    for read_only in (False, True):
        with pytest.raises(NotADatabase, match=r"s\.duckdb': otel_shadow_meta\.schema_version is 'one', not a number"):
            Store.open(path, read_only=read_only)


def test_writes_are_refused_on_the_read_only_access(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store.open(path).close()
    with Store.open(path, read_only=True) as store:
        for statement in ("DELETE FROM spans", "DROP TABLE spans", "SELECT 1; INSERT INTO spans SELECT * FROM spans"):
            with pytest.raises(ReadOnlyQuery, match="read-only"):
                store.query(statement)
        with pytest.raises(QueryError, match="syntax error|Parser"):
            store.query("SELEC * FROM spans")
        with pytest.raises(QueryError, match="nope"):
            store.query("SELECT * FROM nope")


def test_a_locked_database_names_the_holder_and_the_way_out(locked_db: Path) -> None:
    with pytest.raises(DatabaseLocked) as info:
        Store.open(locked_db, read_only=True)
    assert "held by process" in str(info.value)
    assert "python" in str(info.value)  # the holder's command line, to tell a reader from a writer
    assert "otel-shadow collector" in str(info.value)


def test_the_exporter_never_raises_and_counts_what_it_could_not_write(
    locked_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from otel_shadow.store.exporter import DuckDBSpanExporter

    exporter = DuckDBSpanExporter(str(locked_db))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for _ in range(3):
        with tracer.start_as_current_span("op"):
            pass
    assert exporter.failed == 3 and exporter.exported == 0
    messages = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(messages) == 1 and "held by process" in messages[0]
    provider.shutdown()


def _can_mount() -> bool:
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    probe = Path("/tmp/otel-shadow-mount-probe")
    probe.mkdir(exist_ok=True)
    ok = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True).returncode
        == 0
    )
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True)
    return ok


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path | None]:
    """A 2 MiB tmpfs (a disk that fills up), or None where mounting is not allowed."""
    if not _can_mount():
        yield None
        return
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_read_only_directory_gets_a_clear_message(tmp_path: Path, small_fs: Path | None) -> None:
    if small_fs is not None:
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
        target = small_fs / "s.duckdb"
    else:  # not root: permissions are enough
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "s.duckdb"
    with pytest.raises(StoreError, match="cannot write|Read-only|Permission denied|cannot open"):
        Store.open(target)


FILL = textwrap.dedent(
    """
    import resource, signal, sys
    sys.path.insert(0, sys.argv[2])
    from otlp import pair, request
    from otel_shadow.store import Store, Writer
    from otel_shadow.errors import StoreError
    if sys.argv[3] == "rlimit":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))
    store = Store.open(sys.argv[1])
    writer = Writer(store)
    committed = 0
    for i in range(100_000):
        spans = [s for _ in range(50) for s in pair(primary_hash="x" * 200)]
        try:
            committed += writer.write(request(*spans)).stored
        except StoreError as exc:
            print("ERROR", exc, flush=True)
            break
    print("COMMITTED", committed, flush=True)
    """
)


def test_a_full_disk_gives_a_clear_error_and_keeps_what_was_committed(tmp_path: Path, small_fs: Path | None) -> None:
    mode = "tmpfs" if small_fs is not None else "rlimit"
    path = (small_fs or tmp_path) / "s.duckdb"
    out = subprocess.run(
        [sys.executable, "-c", FILL, str(path), str(Path(__file__).parent), mode],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = out.stdout.splitlines()
    assert any(line.startswith("ERROR no space left") for line in lines), out.stdout + out.stderr
    committed = int(lines[-1].split()[1])
    assert committed > 0
    if small_fs is not None:  # make room so the WAL can be replayed, as an operator would
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    with Store.open(path, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(committed,)]


def _out_of_range_spans() -> dict[str, Any]:
    """One span per value that does not fit its column, each next to nothing else wrong."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    cases: dict[str, Span] = {}
    s = span("kind", {"shadow.experiment": "e"})
    s.kind = 1000
    cases["kind"] = s
    s = span("status", {"shadow.experiment": "e"})
    s.status.code = 7
    cases["status.code"] = s
    s = span("start", {"shadow.experiment": "e"})
    s.start_time_unix_nano = 2**64 - 1
    cases["start_time_unix_nano"] = s
    s = span("end", {"shadow.experiment": "e"})
    s.end_time_unix_nano = 2**63 - 1  # DuckDB's infinity: it failed at COMMIT, taking the group with it
    cases["end_time_unix_nano"] = s
    s = span("events", {"shadow.experiment": "e"})
    s.events.extend([Span.Event(time_unix_nano=1, name="e")] * 70_000)
    cases["70000 events"] = s
    s = span("event time", {"shadow.experiment": "e"})
    s.events.add(time_unix_nano=2**64 - 1, name="late")
    cases["event's time_unix_nano"] = s
    cases["64-bit integer range"] = span("tokens", {"shadow.experiment": "e", "gen_ai.usage.input_tokens": 1e30})
    cases["64-bit integer range "] = span("tokens", {"shadow.experiment": "e", "gen_ai.usage.output_tokens": "9" * 30})
    return cases


@pytest.mark.parametrize("reason", list(_out_of_range_spans()))
def test_a_value_out_of_range_rejects_its_span_and_keeps_its_neighbours(tmp_path: Path, reason: str) -> None:
    bad = _out_of_range_spans()[reason]
    good = pair()
    with Store.open(tmp_path / "s.duckdb") as store:
        result = Writer(store).write(request(good[0], bad, good[1]))
        assert (result.stored, result.rejected) == (2, 1)
        assert reason.strip() in result.errors[0] and repr(bad.name) in result.errors[0]
        assert store.query("SELECT count(*) FROM shadow_pairs").rows == [(1,)]


def test_a_token_count_that_is_a_plain_wrong_type_is_still_null_not_a_rejection(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        result = Writer(store).write(
            request(span("t", {"shadow.experiment": "e", "gen_ai.usage.input_tokens": "many"}))
        )
        assert (result.stored, result.rejected) == (1, 0)
        assert store.query(
            "SELECT gen_ai_usage_input_tokens, attributes->>'$.\"gen_ai.usage.input_tokens\"' FROM spans"
        ).rows == [(None, "many")]
