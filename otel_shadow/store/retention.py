"""Retention: traces older than a limit leave the store, optionally exported to Parquet first.

The unit is the trace, aged by its first span. A candidate and its scores live in the trace of
their primary (the span contract), so deleting whole traces never leaves half a pair, or a score
without its pair, behind; a trace whose first span started before the cutoff goes whole, spans,
links and events, even a score span written later.

Work is cut into small steps, each one transaction over a chunk of traces, so that a collector
can run them between its ingest commits without pausing ingest (``due`` / ``step``), and a
command line run loops over them (``run``). A step with an export directory first writes the
chunk's rows to Parquet (a temporary file, synced, then renamed), then deletes them and commits:
a crash in between leaves the rows in the store, and the next step writes the same file name
again (the name is a digest of the rows), so nothing is lost and nothing is exported twice.

The store's connection is sandboxed (no file access from SQL), so the rows are fetched as Arrow
and written by ``pyarrow.parquet`` in Python, never by DuckDB's ``COPY``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ..errors import ConfigError, StoreError
from .database import Store, map_query_error

__all__ = ["Retention", "RetentionReport", "format_duration", "parse_duration"]

logger = logging.getLogger("otel_shadow.store")

_DURATION = re.compile(r"\s*([0-9]{1,9})\s*([smhdw])\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION_S = 100 * 365 * 86400
# What each table's Parquet file holds: its columns, ids of traces as OTLP hex (UUID is no Parquet type)
_EXPORT = {
    "spans": "SELECT * REPLACE (hex_trace_id(trace_id) AS trace_id) FROM spans",
    "span_links": "SELECT * REPLACE (hex_trace_id(trace_id) AS trace_id, hex_trace_id(linked_trace_id) AS linked_trace_id) FROM span_links",
    "span_events": "SELECT * REPLACE (hex_trace_id(trace_id) AS trace_id) FROM span_events",
}
_CHUNK = "trace_id IN (SELECT unnest(?::UUID[]))"


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s``, ``2w`` → a timedelta; ``ConfigError`` naming the value otherwise."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"{str(text)[:40]!r} is not a duration; write a whole number and a unit: 30d, 12h, 90m, 3600s, 2w"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{text.strip()!r}: a retention period must be longer than zero (it would delete everything)")
    if seconds > MAX_DURATION_S:
        raise ConfigError(f"{text.strip()!r} is longer than 100 years; give a shorter period")
    return dt.timedelta(seconds=seconds)


def format_duration(period: dt.timedelta) -> str:
    seconds = int(period.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass
class RetentionReport:
    """What a retention run removed (or, dry, would remove), and how long its steps took."""

    cutoff: dt.datetime
    dry_run: bool = False
    traces: int = 0
    spans: int = 0
    links: int = 0
    events: int = 0
    ledger: int = 0
    files: list[str] = field(default_factory=list)
    steps: int = 0
    max_step_ms: float = 0.0
    total_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "traces": self.traces,
            "spans": self.spans,
            "span_links": self.links,
            "span_events": self.events,
            "ingest_batches": self.ledger,
            "files": list(self.files),
            "steps": self.steps,
            "max_step_ms": round(self.max_step_ms, 2),
            "total_ms": round(self.total_ms, 2),
        }

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [
            f"traces that began before {self.cutoff.isoformat()}: {verb} {self.traces} traces "
            f"({self.spans} spans, {self.links} links, {self.events} events) and {self.ledger} ingest-ledger rows"
        ]
        if self.files:
            out.append(f"exported first to {len(self.files)} Parquet files, e.g. {self.files[0]}")
        if not self.dry_run and self.steps:
            out.append(f"{self.steps} steps, the longest {self.max_step_ms:.1f} ms, {self.total_ms:.0f} ms in all")
        return out


class Retention:
    """Removes traces older than ``older_than`` from ``store``, in steps of ``chunk_traces`` traces.

    ``export_dir``: write each step's rows there first, as Parquet files partitioned by the UTC day
    the trace began: ``<dir>/<table>/day=YYYY-MM-DD/part-<digest>.parquet`` (directories 0700,
    files 0600: they hold what the store held). ``interval_s``: how often a collector starts a pass.
    """

    def __init__(
        self,
        store: Store,
        older_than: dt.timedelta,
        *,
        export_dir: str | os.PathLike[str] | None = None,
        chunk_traces: int = 500,
        max_pass_traces: int = 200_000,
        interval_s: float = 600.0,
        list_in_background: bool = False,
        clock: Any = None,
    ) -> None:
        if store.read_only:
            raise ValueError("retention needs a store opened for writing")
        if older_than.total_seconds() <= 0:
            raise ConfigError("a retention period must be longer than zero")
        self.store = store
        self.older_than = older_than
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.chunk_traces = chunk_traces
        self.max_pass_traces = max_pass_traces
        self.interval_s = interval_s
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._pending: list[tuple[uuid.UUID, dt.date]] = []
        self._cutoff: dt.datetime | None = None
        self._capped = False
        self._next_pass = 0.0  # monotonic
        # a collector lists a pass's traces on a cursor of its own, in a thread: a read, during which
        # its writer goes on committing (the listing is the one step whose cost grows with the backlog)
        self.list_in_background = list_in_background
        self._listing: threading.Thread | None = None
        self._listed: list[tuple[Any, ...]] | BaseException = []
        self.report: RetentionReport | None = None  # the pass in progress (or the last one)
        self.last_report: RetentionReport | None = None  # the last finished pass
        if self.export_dir is not None:
            _private_dir(self.export_dir)

    def cutoff(self) -> dt.datetime:
        """Now minus the period, in UTC."""
        now = self._clock()
        return (now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)) - self.older_than

    # --- a collector's view: one small step at a time -------------------------------------------
    def due(self) -> bool:
        """A pass is under way, or the interval since the last one has passed."""
        if self._listing is not None:
            return not self._listing.is_alive()
        return bool(self._pending) or self._cutoff is not None or time.monotonic() >= self._next_pass

    def step(self) -> bool:
        """One step: start a pass, or remove one chunk, or finish the pass. True while the pass goes on."""
        started = time.perf_counter()
        try:
            if self._cutoff is None:
                self._begin_pass()
                more = True
            elif self._listing is not None:
                if self._listing.is_alive():
                    return True  # not due yet: a collector does not call it meanwhile
                self._listing.join()
                self._listing = None
                self._take_listed()
                more = True
            elif self._pending:
                # one day per step, so that a step writes at most one file per table
                day = self._pending[0][1]
                size = 1
                while size < min(self.chunk_traces, len(self._pending)) and self._pending[size][1] == day:
                    size += 1
                chunk, self._pending = self._pending[:size], self._pending[size:]
                self._remove(chunk)
                more = True
            else:
                self._finish_pass()
                more = False
        except BaseException:
            # the pass is abandoned (nothing of the failed step was deleted) and tried again after
            # the interval, not at once: a full export disk must not turn into a busy loop
            self._pending, self._cutoff, self._listing = [], None, None
            self._next_pass = time.monotonic() + self.interval_s
            raise
        report = self.report
        if report is not None:
            elapsed = (time.perf_counter() - started) * 1000
            report.steps += 1
            report.total_ms += elapsed
            report.max_step_ms = max(report.max_step_ms, elapsed)
        return more

    # --- a command's view: everything now ---------------------------------------------------------
    def run(self, dry_run: bool = False) -> RetentionReport:
        """Remove (or, ``dry_run``, count) everything older than the limit; the report of all passes."""
        if dry_run:
            return self._count()
        total: RetentionReport | None = None
        while True:
            while self.step():
                pass
            report = self.last_report
            assert report is not None
            if total is None:
                total = report
            else:
                for name in ("traces", "spans", "links", "events", "ledger", "steps", "total_ms"):
                    setattr(total, name, getattr(total, name) + getattr(report, name))
                total.files += report.files
                total.max_step_ms = max(total.max_step_ms, report.max_step_ms)
            if not self._capped:
                return total

    # --- the steps --------------------------------------------------------------------------------
    def _begin_pass(self) -> None:
        cutoff = self.cutoff()
        self._cutoff = cutoff
        self.report = RetentionReport(cutoff)
        if not self.list_in_background:
            self._listed = self._list(cutoff)
            self._take_listed()
            return
        self._listed = []
        self._listing = threading.Thread(
            target=self._list_into, args=(cutoff,), name="otel-shadow-retention", daemon=True
        )
        self._listing.start()

    def _list(self, cutoff: dt.datetime) -> list[tuple[Any, ...]]:
        """The traces that began before ``cutoff``, oldest first, on a cursor of their own."""
        try:
            cursor = self.store.con.cursor()
            try:
                return cursor.execute(
                    "SELECT trace_id, min(start_time) AS began FROM spans WHERE start_time < ? "
                    "GROUP BY trace_id ORDER BY began, trace_id LIMIT ?",
                    [_naive_utc(cutoff), self.max_pass_traces + 1],
                ).fetchall()
            finally:
                cursor.close()
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc

    def _list_into(self, cutoff: dt.datetime) -> None:
        try:
            self._listed = self._list(cutoff)
        except BaseException as exc:  # raised by the next step, in the writer's thread
            self._listed = exc

    def _take_listed(self) -> None:
        rows, self._listed = self._listed, []
        if isinstance(rows, BaseException):
            raise rows
        self._capped = len(rows) > self.max_pass_traces
        self._pending = [(trace, began.date()) for trace, began in rows[: self.max_pass_traces]]

    def _finish_pass(self) -> None:
        assert self._cutoff is not None and self.report is not None
        con = self.store.con
        try:
            deleted = con.execute("DELETE FROM ingest_batches WHERE received_at < ?", [self._cutoff]).fetchone()
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc
        self.report.ledger += int(deleted[0]) if deleted else 0
        self.last_report = self.report
        self._cutoff = None
        self._next_pass = time.monotonic() + (0.0 if self._capped else self.interval_s)
        report = self.report
        if report.traces or report.ledger:
            logger.info(
                "retention pass done",
                extra={"fields": {"retention": report.as_dict() | {"files": len(report.files)}}},
            )

    def _remove(self, chunk: list[tuple[uuid.UUID, dt.date]]) -> None:
        """Export (when asked) and delete the rows of ``chunk``'s traces, in one transaction."""
        report = self.report
        assert report is not None
        ids = [trace for trace, _ in chunk]
        con = self.store.con
        files: list[str] = []
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                exported = self._export(con, chunk, files) if self.export_dir is not None else None
                counts = {}
                for table in ("span_events", "span_links", "spans"):
                    row = con.execute(f"DELETE FROM {table} WHERE {_CHUNK}", [ids]).fetchone()
                    counts[table] = int(row[0]) if row else 0
                if exported is not None and exported != counts:
                    raise StoreError(
                        f"retention: the export holds {exported} rows but the delete found {counts}; "
                        "nothing was deleted (run retention again)"
                    )
                con.execute("COMMIT")
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc
        report.traces += len(chunk)
        report.spans += counts["spans"]
        report.links += counts["span_links"]
        report.events += counts["span_events"]
        report.files += files

    def _export(
        self, con: duckdb.DuckDBPyConnection, chunk: list[tuple[uuid.UUID, dt.date]], files: list[str]
    ) -> dict[str, int]:
        """Write the chunk's rows to Parquet, one file per table and day; the rows per table."""
        import pyarrow.parquet as pq

        assert self.export_dir is not None
        by_day: dict[dt.date, list[uuid.UUID]] = defaultdict(list)
        for trace, day in chunk:
            by_day[day].append(trace)
        counts = dict.fromkeys(("span_events", "span_links", "spans"), 0)
        written: list[tuple[Path, Path]] = []
        try:
            for day, traces in sorted(by_day.items()):
                digest = ""
                for table, select in _EXPORT.items():  # spans first: their keys name the day's files
                    data = con.sql(f"{select} WHERE {_CHUNK}", params=[traces]).to_arrow_table()
                    if table == "spans":
                        digest = _rows_digest(data)
                    counts[table] += data.num_rows
                    if not data.num_rows:
                        continue
                    folder = _private_dir(_private_dir(self.export_dir / table) / f"day={day.isoformat()}")
                    final = folder / f"part-{digest}.parquet"
                    tmp = folder / f".part-{digest}.parquet.tmp"
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        pq.write_table(data, out, compression="zstd")
                        out.flush()
                        os.fsync(out.fileno())
                    written.append((tmp, final))
            for tmp, final in written:
                os.replace(tmp, final)
                files.append(str(final))
            for folder in {final.parent for _, final in written}:
                _fsync_dir(folder)
        except OSError as exc:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise StoreError(
                f"retention: cannot write the Parquet export in '{self.export_dir}': {exc.strerror or exc}; "
                "nothing was deleted. Free space or choose another --export directory"
            ) from None
        return counts

    def _count(self) -> RetentionReport:
        cutoff = self.cutoff()
        report = RetentionReport(cutoff, dry_run=True)
        row = self._read(
            "WITH old AS (SELECT DISTINCT trace_id FROM spans WHERE start_time < ?) SELECT "
            "(SELECT count(*) FROM old), "
            "(SELECT count(*) FROM spans WHERE trace_id IN (SELECT trace_id FROM old)), "
            "(SELECT count(*) FROM span_links WHERE trace_id IN (SELECT trace_id FROM old)), "
            "(SELECT count(*) FROM span_events WHERE trace_id IN (SELECT trace_id FROM old)), "
            "(SELECT count(*) FROM ingest_batches WHERE received_at < ?)",
            [_naive_utc(cutoff), cutoff],
        )[0]
        report.traces, report.spans, report.links, report.events, report.ledger = (int(v) for v in row)
        return report

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.store.con.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            raise map_query_error(exc) from exc


def _rows_digest(spans: Any) -> str:
    """16 hex digits naming the files of these span rows: the same rows (a step run again after a
    crash) give the same name, and other rows (a late span of a trace removed before) another."""
    keys = sorted(zip(*(spans.column(c).to_pylist() for c in ("trace_id", "span_id", "batch_id"))))
    return hashlib.blake2b(repr(keys).encode(), digest_size=8).hexdigest()


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    """Span times are stored as UTC without a zone (TIMESTAMP_NS)."""
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _private_dir(path: Path) -> Path:
    """``path`` created if missing, readable by this OS user only; ``StoreError`` if impossible."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"retention: cannot create the export directory '{path}': {exc.strerror or exc}") from None
    if not path.is_dir():
        raise StoreError(f"retention: the export path '{path}' is not a directory")
    return path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
