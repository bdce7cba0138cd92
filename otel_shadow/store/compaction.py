"""Compaction: the closed segments of a partition merged into one larger segment, atomically.

A collector closes a segment every ``--segment-seconds``, so a folder gathers thousands of small
files per table and day; every query opens every footer. ``compact_segments`` merges, per
``date=…/hour=…`` partition, every segment that counts (``Partition.live``) into one segment named
``compacted-<32 hex>`` (a hash of what it holds), safely beside collectors that keep writing:

1. *write*: per table, the inputs' rows go to a hidden temporary file, fsynced;
2. *commit*: the temporary files are renamed to their final names, the spans file last, and the
   folders fsynced. The spans file carries the manifest (its footer: every segment name it holds,
   those of merged compacted segments included). From that rename on, readers count the output
   and no longer the inputs (``store.segments``, "Which files count");
3. *remove*: the inputs' files are deleted.

Stopped at any point, the folder reads the same: before the spans rename, the output does not
count (hidden files, or files of a compacted segment without its spans file); after it, the
inputs do not. The next run finishes the work (``_tidy``): it deletes what no longer counts.

Only segments whose spans file exists are merged: a collector writes a segment's spans file last,
so a segment being written is left alone, as is everything that appears after the listing. A
collector that wrote a merged segment again on restart (it was written but not marked closed in
its DuckDB file) writes it under the same name, which the manifest already covers. One
compaction runs at a time per folder (an exclusive lock on ``<root>/.compaction.lock``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError, SchemaTooNew, StoreError
from .database import SCHEMA_VERSION
from .segments import (
    _KV_COMPACTED,
    _KV_SCHEMA,
    SEGMENT_COMPRESSION,
    SEGMENT_TABLES,
    Partition,
    _fsync_dir,
    _role_groups,
    is_compacted,
    read_manifest,
    segment_partitions,
)

__all__ = ["STEPS", "CompactionResult", "compact_segments"]

# A compacted file's row groups: at most this many rows (DuckDB's own row group size: a reader
# scans row groups in parallel, so one huge group would be read by one thread) or (uncompressed)
# bytes each, so that merging holds one row group in memory, not the partition
_ROWS_PER_GROUP = 122_880
_BYTES_PER_GROUP = 128 * 1024 * 1024
_ROLES = 4  # primary, candidate, replicate, NULL (not an execution)
_MIXED = object()  # the "role" of rows kept in the order an unsorted segment had them
_ROWS_PER_BATCH = 64 * 1024  # rows read from an input at a time
_TEMP_PREFIX = ".compacted-"
_PARTITION = re.compile(r"^date=\d{4}-\d{2}-\d{2}/hour=\d{2}$")

# the steps after which ``on_step`` is called (tests stop there, as a crash would, or write meanwhile)
# "renamed": every table's file but the spans file is in place (the output does not count yet)
STEPS = ("written", "renamed", "committed", "removed")


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """One partition's compaction: what went in, what came out."""

    partition: str
    name: str
    inputs: tuple[str, ...]
    spans: int
    bytes_before: int
    bytes_after: int


def compact_segments(
    root: str | os.PathLike[str],
    *,
    min_segments: int = 2,
    partitions: set[str] | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> list[CompactionResult]:
    """Merge, in every partition (or those named, ``date=…/hour=…``) with at least ``min_segments``
    segments that count, those segments into one. ``on_step(partition, step)`` is called after
    each of ``STEPS`` (tests: an exception there is a crash at that point)."""
    if min_segments < 2:
        raise ValueError(f"min_segments must be at least 2 (got {min_segments}): one segment is already merged")
    for name in partitions or ():
        if not _PARTITION.match(name):
            raise ConfigError(
                f"partition {name[:80]!r} is not date=YYYY-MM-DD/hour=HH (for example date=2026-11-29/hour=10)"
            )
    base = Path(root)
    done: list[CompactionResult] = []
    with _exclusive(base):
        for partition in segment_partitions(base):
            if partitions is not None and partition.name not in partitions:
                continue
            _tidy(base, partition)
        for partition in segment_partitions(base):
            if partitions is not None and partition.name not in partitions:
                continue
            live = partition.live()
            inputs = sorted(live["spans"])  # a segment counts as complete once its spans file exists
            if len(inputs) < min_segments:
                continue
            done.append(_compact(base, partition, live, inputs, on_step or _no_step))
    return done


@contextmanager
def _exclusive(base: Path) -> Iterator[None]:
    if not base.is_dir():
        raise StoreError(f"segments folder '{base}' does not exist (or is not a folder); pass a collector's --segments")
    try:
        fd = os.open(base / ".compaction.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot lock '{base}' for compaction: {exc}; compaction needs write access to it") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"another compaction of '{base}' is running (it holds {base / '.compaction.lock'}); wait for it"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _tidy(base: Path, partition: Partition) -> None:
    """Delete what a stopped compaction left that no longer counts: its temporary files, the files
    of an output whose spans file was never renamed, and inputs a committed output holds."""
    live = partition.live()
    touched: set[Path] = set()
    for table, names in partition.files.items():
        for name, path in names.items():
            if name not in live[table]:
                path.unlink(missing_ok=True)
                touched.add(path.parent)
    for table in SEGMENT_TABLES:
        folder = base / f"table={table}" / partition.name
        for temp in folder.glob(f"{_TEMP_PREFIX}*.parquet.tmp"):
            if is_compacted(temp.name[1 : -len(".parquet.tmp")]):
                temp.unlink(missing_ok=True)
                touched.add(folder)
    for folder in touched:
        _fsync_dir(folder)


def _compact(
    base: Path,
    partition: Partition,
    live: dict[str, dict[str, Path]],
    inputs: list[str],
    on_step: Callable[[str, str], None],
) -> CompactionResult:
    held: set[str] = set(inputs)
    for name in inputs:
        if is_compacted(name):
            held.update(read_manifest(live["spans"][name]))
    manifest = sorted(held)
    name = "compacted-" + hashlib.blake2b(json.dumps(manifest).encode(), digest_size=16).hexdigest()
    chosen = {table: [live[table][n] for n in inputs if n in live[table]] for table in SEGMENT_TABLES}
    bytes_before = sum(p.stat().st_size for paths in chosen.values() for p in paths)

    # 1. write: every table to a hidden temporary file (spans last, as everywhere)
    written: list[tuple[Path, Path]] = []  # (temporary, final)
    spans = 0
    try:
        for table in SEGMENT_TABLES:
            if not chosen[table]:
                continue
            folder = base / f"table={table}" / partition.name
            temp, final = folder / f".{name}.parquet.tmp", folder / f"{name}.parquet"
            written.append((temp, final))
            extra = {_KV_COMPACTED: json.dumps(manifest).encode()} if table == "spans" else {}
            rows = _merge(chosen[table], temp, extra)
            if table == "spans":
                spans = rows
    except BaseException:
        for temp, _ in written:
            temp.unlink(missing_ok=True)
        raise
    on_step(partition.name, "written")

    # 2. commit: the spans file's rename is the point from which the output counts, the inputs not
    for temp, final in written:  # in SEGMENT_TABLES' order: the spans file last
        if final.parent.parent.parent.name == "table=spans":
            on_step(partition.name, "renamed")
        os.replace(temp, final)
        _fsync_dir(final.parent)
    on_step(partition.name, "committed")

    # 3. remove the inputs (they no longer count; a stop here leaves them for the next run's _tidy)
    for paths in chosen.values():
        for path in paths:
            path.unlink(missing_ok=True)
    for folder in {p.parent for paths in chosen.values() for p in paths}:
        _fsync_dir(folder)
    on_step(partition.name, "removed")
    return CompactionResult(
        partition.name, name, tuple(inputs), spans, bytes_before, sum(final.stat().st_size for _, final in written)
    )


def _no_step(partition: str, step: str) -> None:
    return None


def _merge(paths: list[Path], temp: Path, extra: dict[bytes, bytes]) -> int:
    """The rows of ``paths`` (one table) → ``temp``, fsynced, under the union of their columns (a
    column a file lacks, written by an older version, is NULL in its rows, as readers read it)."""
    schemas = []
    version = 0
    for path in paths:
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(
                f"cannot compact '{path}': it is not a readable Parquet file ({exc}); move it out"
            ) from exc
        found = (schema.metadata or {}).get(_KV_SCHEMA)
        if found is not None and found.isdigit():
            version = max(version, int(found))
        schemas.append(schema.remove_metadata())
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"segments in '{paths[0].parent}' were written by a newer otel-shadow (schema {version}; this one "
            f"knows up to {SCHEMA_VERSION}); compact them with that version, or upgrade otel-shadow"
        )
    try:
        unified = pa.unify_schemas(schemas)
    except pa.ArrowException as exc:
        raise StoreError(f"cannot compact the segments in '{paths[0].parent}': their columns disagree ({exc})") from exc
    unified = unified.with_metadata({_KV_SCHEMA: str(version or SCHEMA_VERSION).encode(), **extra})
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = pending_bytes = 0
    # spans: a row group never holds two roles, as in the segments (segments._SPANS_ORDER)
    by_role = "role" in unified.names
    pending_role: object = _MIXED
    with pq.ParquetWriter(temp, unified, compression=SEGMENT_COMPRESSION) as writer:
        for path in paths:
            with pq.ParquetFile(path) as source:
                for whole in source.iter_batches(batch_size=_ROWS_PER_BATCH):
                    columns = [
                        whole.column(field.name)
                        if field.name in whole.schema.names
                        else pa.nulls(whole.num_rows, field.type)
                        for field in unified
                    ]
                    whole = pa.RecordBatch.from_arrays(columns, schema=unified)
                    # an unsorted segment (written before segments were sorted) is kept as it is
                    slices = _role_groups(whole, at_most=_ROLES) if by_role else [whole]
                    pure = by_role and (len(slices) > 1 or pc.count_distinct(whole.column("role"), "all").as_py() == 1)
                    for batch in slices:
                        role = batch.column("role")[0].as_py() if pure else _MIXED
                        if pending and role != pending_role:
                            writer.write_table(pa.Table.from_batches(pending), row_group_size=_ROWS_PER_GROUP)
                            rows += pending_rows
                            pending, pending_rows, pending_bytes = [], 0, 0
                        pending_role = role
                        pending.append(batch)
                        pending_rows += batch.num_rows
                        pending_bytes += batch.nbytes
                        if pending_rows < _ROWS_PER_GROUP and pending_bytes < _BYTES_PER_GROUP:
                            continue
                        writer.write_table(pa.Table.from_batches(pending), row_group_size=_ROWS_PER_GROUP)
                        rows += pending_rows
                        pending, pending_rows, pending_bytes = [], 0, 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=_ROWS_PER_GROUP)
            rows += pending_rows
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return rows
