"""The single writer: OTLP requests → one transaction (their rows and ledger rows), then ack.

``commit`` returns only after COMMIT, which DuckDB makes durable by syncing its write-ahead log, so
whoever acknowledges a request after ``write`` returns never acknowledges data that could be lost.
A request seen twice (same bytes) is recognised by its ledger row and stored once.

DuckDB's automatic checkpoint runs inside a commit once the WAL passes 16 MiB and slows batched
inserts about 4×; the writer raises that threshold and checkpoints on its own schedule instead
(``maybe_checkpoint``), which also bounds how much WAL a restart has to replay.

Two failures are the writer's to contain. A value DuckDB refuses at COMMIT (a data error: the
prepare-time checks in ``rows`` should have caught it) fails only the spans that carry it, never
the rest of the group. A fatal error (a checkpoint on a full disk) invalidates DuckDB's database:
the writer then reopens the file on its next call (``Store.reopen``; the WAL is replayed), and
raises ``StoreError`` while that is impossible.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from ..errors import StoreError
from .database import Store, map_query_error
from .rows import Rows, request_to_rows

__all__ = ["Prepared", "WriteResult", "Writer", "batch_id_of"]

logger = logging.getLogger("otel_shadow.store")

_INSERT_SPANS = """
INSERT INTO spans SELECT
    trace_id::UUID, span_id, parent_span_id, trace_state, flags, name, kind, start_time, end_time,
    (epoch_ns(end_time) - epoch_ns(start_time)) / 1e6, status_code, status_message, service_name,
    scope_name, scope_version, experiment, role, config_id, outcome, output_hash, output_length,
    candidates_scheduled, candidates_dropped, drop_reasons, gen_ai_operation_name,
    coalesce(gen_ai_provider_name, gen_ai_provider_fallback), gen_ai_request_model,
    gen_ai_response_model, gen_ai_usage_input_tokens, gen_ai_usage_output_tokens, attributes,
    resource_attributes, dropped_attributes_count, dropped_events_count, dropped_links_count, batch_id
FROM _otel_shadow_spans
"""
_INSERT_LEDGER = """
INSERT INTO ingest_batches SELECT batch_id, now(), source, spans, links, events, rejected, skipped, bytes
FROM _otel_shadow_ledger
"""
_INSERT_LINKS = """
INSERT INTO span_links SELECT trace_id::UUID, span_id, link_index, linked_trace_id::UUID,
    linked_span_id, link_type, trace_state, flags, attributes, batch_id FROM _otel_shadow_links
"""
_INSERT_EVENTS = """
INSERT INTO span_events SELECT trace_id::UUID, span_id, event_index, time, name, attributes, batch_id
FROM _otel_shadow_events
"""


def batch_id_of(payload: bytes) -> int:
    """The ledger id of a request: BLAKE2b-64 of its bytes (the same request, the same id)."""
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class Prepared:
    """One decoded request, ready to commit: its rows and its ledger entry."""

    rows: Rows
    batch_id: int
    source: str
    size: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What committing one request did."""

    batch_id: int
    stored: int  # spans written (0 for a duplicate)
    rejected: int  # invalid spans (answered as partial success)
    skipped: int  # spans without shadow attributes when only those are kept
    duplicate: bool
    errors: tuple[str, ...] = ()
    commit_ms: float = 0.0


# Bisection trials for one request's refused spans: about 12 per refused span in a request of
# 4,096 spans, so a request is searched for up to ~16 of them before it is refused whole.
_MAX_TRIALS = 200


def _is_data_error(exc: BaseException) -> bool:
    """A value DuckDB refuses (conversion, range, constraint, invalid input): the data's fault,
    not the disk's, so retrying the same data cannot help."""
    return isinstance(exc, (duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException)) and not _is_fatal(
        exc
    )


def _is_fatal(exc: BaseException) -> bool:
    """DuckDB invalidated the database: nothing works on this connection until it is reopened."""
    return isinstance(exc, duckdb.FatalException) or "database has been invalidated" in str(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _keeping(p: Prepared, indexes: Iterable[int]) -> Prepared:
    """``p`` with only the span rows at ``indexes`` (and their links and events)."""
    keep = sorted(set(indexes))
    spans = p.rows.spans.take(pa.array(keep, pa.int64()))
    keys = set(zip(spans.column("trace_id").to_pylist(), spans.column("span_id").to_pylist()))

    def of_kept(table: pa.Table) -> pa.Table:
        if not table.num_rows:
            return table
        mask = [key in keys for key in zip(table.column("trace_id").to_pylist(), table.column("span_id").to_pylist())]
        return table.filter(pa.array(mask, pa.bool_()))

    rows = p.rows
    return Prepared(
        Rows(spans, of_kept(rows.links), of_kept(rows.events), rows.rejected, rows.errors, rows.received),
        p.batch_id,
        p.source,
        p.size,
    )


def _rejecting(p: Prepared, reasons: dict[int, str]) -> Prepared:
    """``p`` without the span rows in ``reasons``, which are counted as rejected, each with its reason."""
    drop = sorted(reasons)
    if not drop:
        return p
    names = p.rows.spans.column("name").to_pylist()
    kept = _keeping(p, (i for i in range(p.rows.span_count) if i not in reasons))
    errors = tuple(f"span {names[i]!r}: {reasons[i]}" for i in drop[:_MAX_ERRORS])
    if len(drop) > _MAX_ERRORS:
        errors += (f"{len(drop) - _MAX_ERRORS} more spans refused",)
    rows = kept.rows
    return Prepared(
        Rows(rows.spans, rows.links, rows.events, rows.rejected + len(drop), rows.errors + errors, rows.received),
        p.batch_id,
        p.source,
        p.size,
    )


_MAX_ERRORS = 10  # error messages per request (the answer's partial_success.error_message is one string)


def _with_batch_ids(tables: list[tuple[pa.Table, int]]) -> pa.Table | None:
    parts = [
        t.append_column("batch_id", pa.array(np.full(t.num_rows, bid, dtype=np.uint64)))
        for t, bid in tables
        if t.num_rows
    ]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


class Writer:
    """Writes OTLP requests into a ``Store`` opened for writing. Thread-safe (one commit at a time).

    ``prepare`` decodes (no database; any thread); ``commit`` writes many prepared requests in one
    transaction (group commit: one WAL sync for all of them); ``write`` does both for one request.
    """

    def __init__(
        self,
        store: Store,
        *,
        shadow_only: bool = False,
        checkpoint_interval_s: float = 60.0,
        checkpoint_wal_bytes: int = 256 * 2**20,
    ) -> None:
        if store.read_only:
            raise ValueError("a Writer needs a store opened for writing")
        self.store = store
        self.shadow_only = shadow_only
        self.checkpoint_interval_s = checkpoint_interval_s
        self.checkpoint_wal_bytes = checkpoint_wal_bytes
        self._lock = threading.Lock()
        self.invalidated: str | None = None  # why DuckDB invalidated the database (reopened on the next commit)
        self._last_checkpoint = time.monotonic()
        self._bytes_since_checkpoint = 0

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The store's connection (a new one after ``reopen``)."""
        return self.store.con

    def prepare(
        self,
        request: ExportTraceServiceRequest | bytes,
        *,
        source: str = "otlp",
        payload: bytes | None = None,
    ) -> Prepared:
        """Decode one request into rows (pure: touches no database).

        Bytes are converted as they are (never parsed twice); malformed bytes raise
        ``google.protobuf.message.DecodeError``.
        """
        if isinstance(request, bytes):
            payload = request
        elif payload is None:
            payload = request.SerializeToString(deterministic=True)
        rows = request_to_rows(payload, shadow_only=self.shadow_only)
        return Prepared(rows, batch_id_of(payload), source, len(payload))

    def write(
        self,
        request: ExportTraceServiceRequest | bytes,
        *,
        source: str = "otlp",
        payload: bytes | None = None,
    ) -> WriteResult:
        """Store one request in one transaction; returns after COMMIT (durable)."""
        return self.commit([self.prepare(request, source=source, payload=payload)])[0]

    def commit(self, batch: list[Prepared]) -> list[WriteResult]:
        """Store prepared requests in one transaction; returns after COMMIT, one result each.

        A request whose batch id is already in the ledger (or earlier in ``batch``) is a
        duplicate: acknowledged, not stored again. A value DuckDB refuses (a data error, not an
        I/O one) never fails the other requests: see ``_isolate``. Any other error raises
        ``StoreError`` and nothing of the group is stored; an invalidated database is reopened
        by the next call.
        """
        with self._lock:
            started = time.perf_counter()
            self._reopen_if_invalidated()
            try:
                fresh = self._transaction(batch)
            except duckdb.Error as exc:
                if not _is_data_error(exc):
                    raise self._failed(exc) from exc
                return self._isolate(batch, exc, started)
            return self._results(batch, fresh, started)

    def _results(self, batch: list[Prepared], fresh: list[Prepared], started: float) -> list[WriteResult]:
        elapsed = (time.perf_counter() - started) * 1000
        self._bytes_since_checkpoint += sum(p.size for p in fresh)
        fresh_ids = {id(p) for p in fresh}
        return [
            WriteResult(
                p.batch_id,
                p.rows.span_count if id(p) in fresh_ids else 0,
                p.rows.rejected,
                p.rows.skipped,
                id(p) not in fresh_ids,
                p.rows.errors,
                elapsed,
            )
            for p in batch
        ]

    def _transaction(self, batch: list[Prepared], *, trial: bool = False) -> list[Prepared]:
        """Insert ``batch`` and its ledger rows in one transaction; returns the requests not seen
        before. ``trial``: roll back instead of committing (does DuckDB take these rows?). On an
        error the transaction is rolled back and the ``duckdb.Error`` raised."""
        con = self.con
        try:
            con.execute("BEGIN TRANSACTION")
            known = {
                row[0]
                for row in con.execute(
                    "SELECT batch_id FROM ingest_batches WHERE batch_id IN (SELECT unnest(?::UBIGINT[]))",
                    [[p.batch_id for p in batch]],
                ).fetchall()
            }
            fresh: list[Prepared] = []
            for p in batch:
                if p.batch_id not in known:
                    known.add(p.batch_id)
                    fresh.append(p)
            if fresh:
                ledger = pa.table(
                    {
                        "batch_id": pa.array([p.batch_id for p in fresh], pa.uint64()),
                        "source": [p.source for p in fresh],
                        "spans": [p.rows.span_count for p in fresh],
                        "links": [p.rows.links.num_rows for p in fresh],
                        "events": [p.rows.events.num_rows for p in fresh],
                        "rejected": [p.rows.rejected for p in fresh],
                        "skipped": [p.rows.skipped for p in fresh],
                        "bytes": [p.size for p in fresh],
                    }
                )
                if not trial:
                    self._insert(con, "_otel_shadow_ledger", ledger, _INSERT_LEDGER)
                self._insert(
                    con,
                    "_otel_shadow_spans",
                    _with_batch_ids([(p.rows.spans, p.batch_id) for p in fresh]),
                    _INSERT_SPANS,
                )
                self._insert(
                    con,
                    "_otel_shadow_links",
                    _with_batch_ids([(p.rows.links, p.batch_id) for p in fresh]),
                    _INSERT_LINKS,
                )
                self._insert(
                    con,
                    "_otel_shadow_events",
                    _with_batch_ids([(p.rows.events, p.batch_id) for p in fresh]),
                    _INSERT_EVENTS,
                )
            con.execute("ROLLBACK" if trial else "COMMIT")
            return fresh
        except duckdb.Error:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        finally:
            for name in ("_otel_shadow_ledger", "_otel_shadow_spans", "_otel_shadow_links", "_otel_shadow_events"):
                try:
                    con.unregister(name)
                except duckdb.Error:
                    pass

    # --- poison: a value DuckDB refuses fails its own spans, never its neighbours -------------------
    def _isolate(self, batch: list[Prepared], error: duckdb.Error, started: float) -> list[WriteResult]:
        """The group hit a data error: commit each request alone; in a request DuckDB still
        refuses, find the spans it refuses (trial inserts, rolled back) and store the rest, the
        refused ones answered as rejected (partial success: the client does not retry them).
        The ledger row of such a request makes its retry a duplicate, as for any other."""
        logger.warning(
            "a commit group hit a data error, committing its %d requests one by one: %s", len(batch), _first_line(error)
        )
        results: list[WriteResult] = []
        for p in batch:
            try:
                fresh = self._transaction([p])
            except duckdb.Error as exc:
                if not _is_data_error(exc):
                    raise self._failed(exc) from exc
                p = self._without_bad_spans(p, exc)
                try:
                    fresh = self._transaction([p])
                except duckdb.Error as again:
                    if not _is_data_error(again):
                        raise self._failed(again) from again
                    # the refusal lies in no span on its own: the request is refused whole (its ledger row stays)
                    reason = f"the request cannot be stored: {_first_line(again)}"
                    p = _rejecting(p, dict.fromkeys(range(p.rows.span_count), reason))
                    fresh = self._transaction_or_fail([p])
            results.extend(self._results([p], fresh, started))
        return results

    def _transaction_or_fail(self, batch: list[Prepared]) -> list[Prepared]:
        try:
            return self._transaction(batch)
        except duckdb.Error as exc:
            raise self._failed(exc) from exc

    def _without_bad_spans(self, p: Prepared, error: duckdb.Error) -> Prepared:
        """``p`` minus the spans DuckDB refuses, found by bisection (each refused span costs
        about log2(spans) trial inserts; past ``_MAX_TRIALS`` the whole request is refused)."""
        bad: dict[int, str] = {}  # span row → why DuckDB refuses it
        trials = 0

        def search(indexes: list[int]) -> bool:
            """Collect the refused spans among ``indexes``; False once the trial budget is spent."""
            nonlocal trials
            if trials >= _MAX_TRIALS:
                return False
            trials += 1
            try:
                self._transaction([_keeping(p, indexes)], trial=True)
                return True
            except duckdb.Error as exc:
                if not _is_data_error(exc):
                    raise
                if len(indexes) == 1:
                    bad[indexes[0]] = f"DuckDB cannot store it: {_first_line(exc)}"
                    return True
            middle = len(indexes) // 2
            return search(indexes[:middle]) and search(indexes[middle:])

        everything = list(range(p.rows.span_count))
        try:
            within_budget = search(everything)
        except duckdb.Error as exc:
            raise self._failed(exc) from exc
        if not within_budget:
            reason = f"too many spans that cannot be stored (DuckDB: {_first_line(error)})"
            return _rejecting(p, dict.fromkeys(everything, reason))
        return _rejecting(p, bad)

    # --- an unusable database -----------------------------------------------------------------------
    def _failed(self, exc: BaseException) -> StoreError:
        """Map a commit/checkpoint error; a fatal one marks the database for reopening."""
        if _is_fatal(exc):
            if self.invalidated is None:
                logger.error("the database was invalidated; it is reopened once it can be: %s", _first_line(exc))
            self.invalidated = _first_line(exc)
        return map_query_error(exc)

    def _reopen_if_invalidated(self) -> None:
        if self.invalidated is None:
            return
        self.store.reopen()  # raises (no space left…) while the file cannot be opened for writing
        logger.warning("database reopened after it was invalidated (%s)", self.invalidated)
        self.invalidated = None
        self._last_checkpoint = time.monotonic()

    def probe(self) -> None:
        """Check that a commit can succeed now: reopen an invalidated database, then commit one
        small write (the meta table's ``writer_probe_at``). Raises ``StoreError`` while it cannot."""
        with self._lock:
            self._reopen_if_invalidated()
            con = self.con
            try:
                con.execute("BEGIN TRANSACTION")
                con.execute("INSERT OR REPLACE INTO otel_shadow_meta VALUES ('writer_probe_at', now()::VARCHAR)")
                con.execute("COMMIT")
            except duckdb.Error as exc:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise self._failed(exc) from exc

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table | None, sql: str) -> None:
        if table is None or not table.num_rows:
            return
        con.register(name, table)
        con.execute(sql)

    def maybe_checkpoint(self, force: bool = False) -> bool:
        """Checkpoint when the interval passed or enough was written since the last one."""
        due = (
            force
            or time.monotonic() - self._last_checkpoint > self.checkpoint_interval_s
            or self._bytes_since_checkpoint > self.checkpoint_wal_bytes
        )
        if not due:
            return False
        with self._lock:
            if self.invalidated is not None:
                return False
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                raise self._failed(exc) from exc
            self._last_checkpoint = time.monotonic()
            self._bytes_since_checkpoint = 0
        return True
