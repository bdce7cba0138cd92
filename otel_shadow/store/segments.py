"""Parquet segments: the committed rows of a collector's DuckDB file, closed into immutable files
that DuckDB, ClickHouse and Spark read, and a folder of them read back as one store.

Layout (hive partitioning by the hour the segment was closed, UTC)::

    <root>/table=spans/date=2026-11-29/hour=10/<collector-id>-<seq>.parquet
    <root>/table=span_links/date=2026-11-29/hour=10/<collector-id>-<seq>.parquet
    <root>/table=span_events/…   <root>/table=ingest_batches/…

**The DuckDB file is the collector's write-ahead buffer; the segments are the store.** A request is
acknowledged after its transaction committed to DuckDB (``store.writer``), as without segments. A
segment is made from committed rows only, in three steps, each safe to be killed in:

1. *claim* (one transaction): every batch of the ledger (``ingest_batches``) not yet in a segment is
   given the next sequence number (``otel_shadow_segment_batches``) and the segment is recorded as
   claimed (``otel_shadow_segments``);
2. *write*: each table's rows of those batches go to a hidden temporary file, which is fsynced and
   renamed to its final name (spans last: a segment's spans file appearing means all its tables
   are there), then the folders are fsynced;
3. *close* (one transaction): the segment's rows are deleted from the DuckDB file (the ledger rows
   stay, so a retried request is still recognised) and the segment is marked closed.

So every acknowledged span is, at any instant, in the DuckDB file or in a closed segment file. A
segment left claimed by a kill is written again on the next start (``recover``), under the same
names, from the rows still in DuckDB: nothing is lost and nothing is written twice.

Reading (``open_segments``) keeps the sandbox of every other connection (``readonly``): the files
are listed by this code, before any SQL runs, and DuckDB is allowed to open exactly those
(``allowed_paths``) before external access is switched off and the configuration locked. The
tables become views over them, cast to the schema's types, and ``views.sql`` runs unchanged.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError, SchemaTooNew, StoreError
from .database import SCHEMA_VERSION, Store, map_query_error
from .readonly import SANDBOX_SETTINGS

__all__ = [
    "SEGMENT_TABLES",
    "Partition",
    "SegmentInfo",
    "SegmentWriter",
    "is_compacted",
    "list_segment_files",
    "open_segments",
    "read_manifest",
    "segment_partitions",
    "validate_collector_id",
]

logger = logging.getLogger("otel_shadow.store")

# Written in this order: the spans file last, so its presence means the whole segment is there.
SEGMENT_TABLES = ("ingest_batches", "span_events", "span_links", "spans")
# The tables whose rows leave the DuckDB file once they are in a closed segment (the ledger stays:
# it recognises a retried request).
_MOVED_TABLES = ("span_events", "span_links", "spans")

_COLLECTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.parquet$")
_DATE = re.compile(r"^date=\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^hour=\d{2}$")
_COMPACTED = re.compile(r"^compacted-[0-9a-f]{32}$")
_META_ID = "segments.collector_id"
_KV_SCHEMA = b"otel_shadow.schema_version"
_KV_COMPACTED = b"otel_shadow.compacted_from"  # JSON list of the segment names a compacted segment holds
# The columns (with their DuckDB types) every segment file of a table has, whatever its version
_KEY_COLUMNS = {
    "spans": ("trace_id UUID", "span_id UBIGINT", "batch_id UBIGINT"),
    "span_links": ("trace_id UUID", "span_id UBIGINT", "batch_id UBIGINT"),
    "span_events": ("trace_id UUID", "span_id UBIGINT", "batch_id UBIGINT"),
    "ingest_batches": ("batch_id UBIGINT",),
}
_ROWS_PER_BATCH = 64 * 1024  # rows fetched from DuckDB at a time, and the most a row group holds
# A segment's spans are written sorted by role, then experiment, and no row group holds two roles:
# the views read each role on its own (``shadow_runs_of(['primary'])``, the candidates, the GenAI
# children, whose role is NULL), and a row group's min/max of ``role`` then lets DuckDB skip the
# others' row groups without decoding them. Spans arrive with the roles interleaved, so without
# this every row group holds every role and every role's scan decodes every span.
_SPANS_ORDER = "role NULLS LAST, experiment NULLS LAST"
SEGMENT_COMPRESSION = "zstd"

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS otel_shadow_segments (
    seq          UBIGINT     PRIMARY KEY,
    collector_id VARCHAR     NOT NULL,
    partition    VARCHAR     NOT NULL,  -- date=YYYY-MM-DD/hour=HH
    claimed_at   TIMESTAMPTZ NOT NULL,
    closed_at    TIMESTAMPTZ,           -- NULL: claimed, its files not yet all written
    spans        BIGINT
);
CREATE TABLE IF NOT EXISTS otel_shadow_segment_batches (
    batch_id UBIGINT PRIMARY KEY,
    seq      UBIGINT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One closed segment: its sequence number, where its files are, what it holds."""

    seq: int
    partition: str
    name: str
    spans: int
    batches: int
    files: tuple[Path, ...]


def validate_collector_id(value: str) -> str:
    """A collector id usable in file names, or ``ConfigError`` saying what is allowed."""
    if value == "compacted":  # the temporary files of compactions start with ".compacted-"
        raise ConfigError("collector id 'compacted' is reserved for compacted segments; choose another --collector-id")
    if not _COLLECTOR_ID.match(value):
        raise ConfigError(
            f"collector id {value[:80]!r} is not usable in a segment's file name: use 1-63 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit (for example the pod name)"
        )
    return value


def _default_collector_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).strip(".-_")[:40] or "collector"
    return f"{host}-{secrets.token_hex(4)}"


def _partition(when: _dt.datetime) -> str:
    return f"date={when:%Y-%m-%d}/hour={when:%H}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentWriter:
    """Closes the committed rows of a writable ``Store`` into Parquet segments under ``root``.

    Thread-safe with the store's ``Writer``: it works through cursors of its own (DuckDB's MVCC
    keeps the writer's transactions and these apart); one ``SegmentWriter`` per store.
    """

    def __init__(self, store: Store, root: str | os.PathLike[str], collector_id: str | None = None) -> None:
        if store.read_only:
            raise ValueError("a SegmentWriter needs a store opened for writing")
        self.store = store
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the segments folder '{self.root}': {exc}; pass another --segments"
            ) from exc
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"the segments folder '{self.root}' is not writable; pass another --segments")
        cursor = store.con.cursor()
        try:
            cursor.execute(_BOOKKEEPING)
            self.collector_id = self._collector_id(cursor, collector_id)
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc
        finally:
            cursor.close()

    @staticmethod
    def _collector_id(cursor: duckdb.DuckDBPyConnection, given: str | None) -> str:
        """The id this store's segments are named by: the one given, else the one kept in the store
        (made once: a restarted collector keeps its name, two stores never share one)."""
        row = cursor.execute("SELECT value FROM otel_shadow_meta WHERE key = ?", [_META_ID]).fetchone()
        chosen = validate_collector_id(given or (str(row[0]) if row else _default_collector_id()))
        if row is None or row[0] != chosen:
            cursor.execute("INSERT OR REPLACE INTO otel_shadow_meta VALUES (?, ?)", [_META_ID, chosen])
        return str(chosen)

    # --- the three steps ----------------------------------------------------------------------------
    def recover(self) -> list[SegmentInfo]:
        """At start: write again and close the segments a kill left claimed (their rows are still
        in DuckDB), and remove the temporary files it left."""
        done = self._finish_claimed()
        self._remove_stale_temporaries()
        return done

    def _finish_claimed(self) -> list[SegmentInfo]:
        """Write (again, under the same names) and close every segment claimed but not closed."""
        with self._cursor() as cursor:
            claimed = cursor.execute(
                "SELECT seq, partition, collector_id FROM otel_shadow_segments WHERE closed_at IS NULL ORDER BY seq"
            ).fetchall()
        done = []
        for seq, partition, collector_id in claimed:
            logger.warning("segment %s-%d was claimed but not closed; writing it again", collector_id, seq)
            done.append(self._write_and_close(int(seq), str(partition), str(collector_id), replace=True))
        return done

    def close_segment(self, now: _dt.datetime | None = None) -> SegmentInfo | None:
        """Claim every committed batch not yet in a segment, write them, close the segment. None
        when there was nothing new. A segment an earlier call failed to write (a full disk) is
        finished first."""
        self._finish_claimed()
        when = now or _dt.datetime.now(_dt.timezone.utc)
        partition = _partition(when.astimezone(_dt.timezone.utc))
        with self._cursor() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                seq = int(cursor.execute("SELECT coalesce(max(seq), 0) + 1 FROM otel_shadow_segments").fetchone()[0])  # type: ignore[index]
                claimed = cursor.execute(
                    "INSERT INTO otel_shadow_segment_batches SELECT b.batch_id, ? FROM ingest_batches b "
                    "ANTI JOIN otel_shadow_segment_batches s ON s.batch_id = b.batch_id",
                    [seq],
                ).fetchone()
                if not claimed or not claimed[0]:
                    cursor.execute("ROLLBACK")
                    return None
                cursor.execute(
                    "INSERT INTO otel_shadow_segments VALUES (?, ?, ?, now(), NULL, NULL)",
                    [seq, self.collector_id, partition],
                )
                cursor.execute("COMMIT")
            except BaseException:
                _rollback(cursor)
                raise
        return self._write_and_close(seq, partition, self.collector_id, replace=False)

    def _write_and_close(self, seq: int, partition: str, collector_id: str, *, replace: bool) -> SegmentInfo:
        name = f"{collector_id}-{seq:010d}"
        files: list[Path] = []
        counts: dict[str, int] = {}
        with self._cursor() as cursor:
            for table in SEGMENT_TABLES:
                path, rows = self._write_table(cursor, table, seq, partition, name, replace=replace)
                counts[table] = rows
                if path is not None:
                    files.append(path)
            for folder in {p.parent for p in files}:
                _fsync_dir(folder)
                _fsync_dir(folder.parent)
                _fsync_dir(folder.parent.parent)
            cursor.execute("BEGIN TRANSACTION")
            try:
                for table in _MOVED_TABLES:
                    cursor.execute(
                        f"DELETE FROM {table} WHERE batch_id IN "
                        "(SELECT batch_id FROM otel_shadow_segment_batches WHERE seq = ?)",
                        [seq],
                    )
                cursor.execute(
                    "UPDATE otel_shadow_segments SET closed_at = now(), spans = ? WHERE seq = ?", [counts["spans"], seq]
                )
                cursor.execute("COMMIT")
            except BaseException:
                _rollback(cursor)
                raise
        return SegmentInfo(seq, partition, name, counts["spans"], counts["ingest_batches"], tuple(files))

    def _write_table(
        self, cursor: duckdb.DuckDBPyConnection, table: str, seq: int, partition: str, name: str, *, replace: bool
    ) -> tuple[Path | None, int]:
        """Rows of ``table`` in segment ``seq`` → ``<root>/table=…/<partition>/<name>.parquet``
        (temporary file, fsync, rename). No file when the table has no rows in this segment."""
        folder = self.root / f"table={table}" / partition
        final = folder / f"{name}.parquet"
        uuids = [
            row[0]
            for row in cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND data_type = 'UUID'",
                [table],
            ).fetchall()
        ]
        # UUIDs leave as their 16 bytes (Parquet's UUID type: a third smaller and faster to read
        # than text); DuckDB's Arrow output would give text under the locked configuration
        as_bytes = ", ".join(f"unhex(replace(CAST({c} AS VARCHAR), '-', '')) AS {c}" for c in uuids)
        reader = cursor.sql(
            f"SELECT * {f'REPLACE ({as_bytes})' if as_bytes else ''} FROM {table} WHERE batch_id IN "  # table is one of SEGMENT_TABLES
            f"(SELECT batch_id FROM otel_shadow_segment_batches WHERE seq = {int(seq)})"
            + (f" ORDER BY {_SPANS_ORDER}" if table == "spans" else "")
        ).to_arrow_reader(_ROWS_PER_BATCH)
        rows = 0
        writer: pq.ParquetWriter | None = None
        tmp = folder / f".{name}.parquet.tmp"
        try:
            for batch in reader:
                if not batch.num_rows:
                    continue
                batch = _with_uuid_type(batch, uuids)
                if writer is None:
                    folder.mkdir(parents=True, exist_ok=True)
                    schema = batch.schema.with_metadata({_KV_SCHEMA: str(SCHEMA_VERSION).encode()})
                    writer = pq.ParquetWriter(tmp, schema, compression=SEGMENT_COMPRESSION)
                for group in _role_groups(batch) if table == "spans" else (batch,):
                    writer.write_batch(group)  # one row group per call
                rows += batch.num_rows
        except BaseException:
            if writer is not None:
                writer.close()
            tmp.unlink(missing_ok=True)
            raise
        finally:
            reader.close()
        if writer is None:
            return None, 0
        writer.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, final)
        else:
            # a new segment never overwrites a file: two collectors given the same id would
            try:
                os.link(tmp, final)
            except FileExistsError:
                tmp.unlink(missing_ok=True)
                raise StoreError(
                    f"segment file '{final}' already exists: another collector writes segments under the "
                    f"id '{self.collector_id}'; give each collector its own --collector-id"
                ) from None
            tmp.unlink()
        return final, rows

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of this collector left by a kill (never renamed, never acknowledged as
        a segment: their rows are still in DuckDB)."""
        prefix = f".{self.collector_id}-"
        for path in self.root.glob("table=*/date=*/hour=*/.*.parquet.tmp"):
            if path.name.startswith(prefix):
                path.unlink(missing_ok=True)

    def pending_batches(self) -> int:
        """Committed batches not yet in a closed segment."""
        with self._cursor() as cursor:
            row = cursor.execute(
                "SELECT count(*) FROM ingest_batches b ANTI JOIN "
                "(SELECT s.batch_id FROM otel_shadow_segment_batches s JOIN otel_shadow_segments g "
                "ON g.seq = s.seq WHERE g.closed_at IS NOT NULL) c ON c.batch_id = b.batch_id"
            ).fetchone()
        return int(row[0]) if row else 0

    class _CursorContext:
        def __init__(self, store: Store) -> None:
            self.store = store
            self.cursor: duckdb.DuckDBPyConnection | None = None

        def __enter__(self) -> duckdb.DuckDBPyConnection:
            try:
                self.cursor = self.store.con.cursor()  # the store's connection may have been reopened
            except duckdb.Error as exc:
                raise map_query_error(exc) from exc
            return self.cursor

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            if self.cursor is not None:
                self.cursor.close()
            if isinstance(exc, duckdb.Error):
                raise map_query_error(exc) from exc

    def _cursor(self) -> SegmentWriter._CursorContext:
        return SegmentWriter._CursorContext(self.store)


def _with_uuid_type(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    """``batch`` with its 16-byte ``columns`` typed as Arrow's UUID (Parquet's UUID logical type)."""
    for column in columns:
        i = batch.schema.get_field_index(column)
        storage = batch.column(i).cast(pa.binary(16))
        batch = batch.set_column(i, pa.field(column, pa.uuid()), pa.ExtensionArray.from_storage(pa.uuid(), storage))
    return batch


def _role_groups(batch: pa.RecordBatch, at_most: int | None = None) -> list[pa.RecordBatch]:
    """``batch`` cut where ``role`` changes: each slice holds one role (a sorted batch: one slice
    per role). ``[batch]`` uncut when that would take more than ``at_most`` slices (unsorted)."""
    roles = batch.column(batch.schema.get_field_index("role"))
    if batch.num_rows < 2:
        return [batch]
    before, after = roles.slice(0, batch.num_rows - 1), roles.slice(1)
    changed = pc.or_(pc.fill_null(pc.not_equal(before, after), False), pc.xor(pc.is_null(before), pc.is_null(after)))
    found = pc.indices_nonzero(changed)
    if at_most is not None and len(found) >= at_most:
        return [batch]
    cuts = [0, *(int(i) + 1 for i in found.to_pylist()), batch.num_rows]
    return [batch.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    try:
        cursor.execute("ROLLBACK")
    except duckdb.Error:
        pass


# --- reading a folder of segments as one store ---------------------------------------------------------
#
# Which files count (``docs/scaling.md``, "Compaction"): a compacted segment (``compacted-<hex>``,
# written by ``store.compaction``) counts only once its spans file exists (written last: the commit
# point), and then every segment its manifest names (in that spans file's footer) no longer counts
# in that partition, even while its files are still there (a compaction stopped before it removed
# them, or a collector that wrote a merged segment again on restart). So a reader sees either the
# inputs or the merged output, never both.
@dataclass(frozen=True, slots=True)
class Partition:
    """One ``date=…/hour=…`` partition as found on disk: per table, segment name → file."""

    name: str
    files: dict[str, dict[str, Path]]

    def superseded(self) -> dict[str, str]:
        """Segment name → the committed compacted segment that holds its rows."""
        out: dict[str, str] = {}
        for name, path in sorted(self.files.get("spans", {}).items()):
            if is_compacted(name):
                for merged in read_manifest(path):
                    out.setdefault(merged, name)
        return out

    def live(self) -> dict[str, dict[str, Path]]:
        """Per table, the segments a reader counts (the rule above)."""
        gone = self.superseded()
        committed = self.files.get("spans", {})
        return {
            table: {
                name: path
                for name, path in names.items()
                if name not in gone and (not is_compacted(name) or name in committed)
            }
            for table, names in self.files.items()
        }


def is_compacted(name: str) -> bool:
    """Whether segment ``name`` was written by a compaction (a collector's end in ``-<10 digits>``)."""
    return _COMPACTED.match(name) is not None


def read_manifest(path: Path) -> list[str]:
    """The segment names a compacted spans file replaces (from its footer), or ``StoreError``."""
    try:
        meta = pq.read_metadata(path).metadata or {}
        names = json.loads(meta[_KV_COMPACTED])
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        raise StoreError(
            f"compacted segment '{path}' has no readable manifest ({type(exc).__name__}: {exc}); it was "
            "damaged or not written by otel-shadow: move it out of the segments folder"
        ) from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise StoreError(f"compacted segment '{path}': its manifest is not a list of segment names; move it out")
    return names


def segment_partitions(root: str | os.PathLike[str]) -> list[Partition]:
    """Every partition under ``root`` with every file named as a segment (regular files in
    ``table=…/date=…/hour=…`` folders; temporary files, symbolic links and anything else are left
    out: they are not segments), whether or not it counts (``Partition.live``)."""
    base = Path(root)
    if not base.is_dir():
        raise StoreError(
            f"segments folder '{root}' does not exist (or is not a folder); pass the --segments of a collector"
        )
    found: dict[str, dict[str, dict[str, Path]]] = {}
    for table in SEGMENT_TABLES:
        for path in _walk(base / f"table={table}"):
            partition = f"{path.parent.parent.name}/{path.parent.name}"
            found.setdefault(partition, {t: {} for t in SEGMENT_TABLES})[table][path.name[: -len(".parquet")]] = path
    return [Partition(name, found[name]) for name in sorted(found)]


def list_segment_files(root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """The segment files a reader counts under ``root``, per table (``Partition.live``)."""
    found: dict[str, list[Path]] = {table: [] for table in SEGMENT_TABLES}
    for partition in segment_partitions(root):
        for table, names in partition.live().items():
            found[table].extend(names.values())
    for paths in found.values():
        paths.sort()
    return found


def _walk(table_dir: Path) -> Iterator[Path]:
    if not table_dir.is_dir() or table_dir.is_symlink():
        return
    for date_dir in table_dir.iterdir():
        if not _DATE.match(date_dir.name) or date_dir.is_symlink() or not date_dir.is_dir():
            continue
        for hour_dir in date_dir.iterdir():
            if not _HOUR.match(hour_dir.name) or hour_dir.is_symlink() or not hour_dir.is_dir():
                continue
            for path in hour_dir.iterdir():
                if _FILE.match(path.name) and not path.is_symlink() and path.is_file():
                    yield path.resolve()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_segments(root: str | os.PathLike[str]) -> Store:
    """A read-only ``Store`` over every closed segment under ``root``: the same tables and views
    as a DuckDB file, sandboxed as every other connection (DuckDB may open exactly the segment
    files listed now, nothing else). ``root`` may be an ``s3://bucket/prefix`` (``store.object_store``)."""
    if isinstance(root, str) and "://" in root:
        from .object_store import open_object_segments

        return open_object_segments(root)
    files = list_segment_files(root)
    every = [str(p) for paths in files.values() for p in paths]
    if not files["spans"]:
        raise StoreError(
            f"no closed segments under '{root}' (no table=spans/date=…/hour=…/*.parquet); start a collector "
            f"with --segments {root}, or check the path"
        )
    settings = {k: v for k, v in SANDBOX_SETTINGS.items() if k != "enable_external_access"}
    con = duckdb.connect(":memory:", config=settings)
    try:
        # the trusted setup: only the listed files, then no file access at all beyond them, locked
        con.execute(f"SET allowed_paths = [{', '.join(_literal(p) for p in every)}]")
        con.execute("SET enable_external_access = false")
        # segment files never change once written (a rewrite is a new name, or the same rows under
        # the same name on recovery), and every view reads them several times per report: each scan
        # would otherwise read and parse every file's footer again
        con.execute("SET parquet_metadata_cache = true")
        _check_schema_versions(con, root, every)
        con.execute(_read_sql("schema.sql"))
        columns_of = _file_columns(con, every)
        _check_key_columns(root, files, columns_of)
        for table, paths in files.items():
            if paths:
                _replace_with_view(con, table, paths, columns_of, _null_columns(con, paths))
        con.execute(_read_sql("views.sql"))
        con.execute("INSERT INTO otel_shadow_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("SET enable_progress_bar = false")
        con.execute("SET lock_configuration = true")
        external = con.execute("SELECT current_setting('enable_external_access')").fetchone()
        if not external or external[0] is not False:
            raise StoreError("internal error: the segments connection kept file access; refusing to run SQL on it")
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"cannot read the segments under '{root}': {str(exc).strip().splitlines()[0]}") from exc
    except BaseException:
        con.close()
        raise
    return Store(con, str(root), read_only=True)


def _check_schema_versions(con: duckdb.DuckDBPyConnection, root: str | os.PathLike[str], paths: list[str]) -> None:
    newest = con.execute(
        "SELECT max(TRY_CAST(decode(value) AS INTEGER)), arg_max(file_name, TRY_CAST(decode(value) AS INTEGER)) "
        f"FROM parquet_kv_metadata([{', '.join(_literal(p) for p in paths)}]) WHERE decode(key) = ?",
        [_KV_SCHEMA.decode()],
    ).fetchone()
    if newest and newest[0] is not None and newest[0] > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"segment '{newest[1]}' under '{root}' was written by a newer otel-shadow (schema {newest[0]}; this "
            f"one reads up to {SCHEMA_VERSION}); upgrade otel-shadow (pip install -U otel-shadow)"
        )


def _file_columns(con: duckdb.DuckDBPyConnection, paths: list[str]) -> dict[str, tuple[str, ...]]:
    """Each file's top-level columns with their types, read from the footers once."""
    rows = con.execute(
        "SELECT file_name, list(name || ' ' || coalesce(duckdb_type, type) ORDER BY column_id) "
        f"FROM parquet_schema([{', '.join(_literal(p) for p in paths)}]) WHERE num_children IS NULL "
        "GROUP BY file_name"
    ).fetchall()
    return {str(name): tuple(columns) for name, columns in rows}


def _check_key_columns(
    root: str | os.PathLike[str], files: dict[str, list[Path]], columns_of: dict[str, tuple[str, ...]]
) -> None:
    """Every file holds its table's key columns with their types, or ``StoreError`` naming it: a
    Parquet file of some other data, placed where segments are, is refused before any query."""
    for table, paths in files.items():
        for path in paths:
            have = set(columns_of.get(str(path), ()))
            missing = [c for c in _KEY_COLUMNS[table] if c not in have]
            if missing:
                raise StoreError(
                    f"'{path}' under '{root}' is not a segment of table {table}: it lacks the column(s) "
                    f"{', '.join(missing)}; move it out of the segments folder"
                )


def _null_columns(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> set[str]:
    """The columns that are NULL in every row of ``paths``, by their footers' statistics (a row
    group without a null count counts as holding values)."""
    rows = con.execute(
        "SELECT path_in_schema FROM parquet_metadata("
        f"[{', '.join(_literal(str(p)) for p in paths)}]) GROUP BY path_in_schema "
        "HAVING bool_and(coalesce(stats_null_count = row_group_num_rows, false))"
    ).fetchall()
    return {str(row[0]) for row in rows}


def _replace_with_view(
    con: duckdb.DuckDBPyConnection,
    table: str,
    paths: list[Path],
    columns_of: dict[str, tuple[str, ...]],
    all_null: set[str],
) -> None:
    """The empty table of schema.sql → a view of the same name and column types over ``paths``
    (a column no file has reads as NULL: segments of an older schema). The files are unified by
    column name only when their columns differ: otherwise every query would read every footer
    to bind the view, several times per report.

    A column NULL in every row of every file (by the footers' statistics) is the constant NULL in
    the view, as a column no file has: DuckDB takes a single file's statistics into its plan (a
    filter such as ``drop_reasons IS NOT NULL``, even above an aggregate, then reads nothing) but
    not those of several files, so each such query would otherwise decode the whole table."""
    declared = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    shapes = {columns_of.get(str(p), ()) for p in paths}
    present = {column.split(" ", 1)[0] for shape in shapes for column in shape} - all_null
    by_name = ", union_by_name = true" if len(shapes) > 1 else ""
    source = f"read_parquet([{', '.join(_literal(str(p)) for p in paths)}]{by_name}, hive_partitioning = false)"
    columns = ", ".join(
        f'CAST("{name}" AS {kind}) AS "{name}"' if name in present else f'CAST(NULL AS {kind}) AS "{name}"'
        for name, kind in declared
    )
    con.execute(f"DROP TABLE {table}")
    con.execute(f"CREATE VIEW {table} AS SELECT {columns} FROM {source}")


def _read_sql(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
