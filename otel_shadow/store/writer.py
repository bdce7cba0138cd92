"""The single writer: OTLP requests → one transaction (their rows and ledger rows), then ack.

``commit`` returns only after COMMIT, which DuckDB makes durable by syncing its write-ahead log, so
whoever acknowledges a request after ``write`` returns never acknowledges data that could be lost.
A request seen twice (same bytes) is recognised by its ledger row and stored once.

DuckDB's automatic checkpoint runs inside a commit once the WAL passes 16 MiB and slows batched
inserts about 4×; the writer raises that threshold and checkpoints on its own schedule instead
(``maybe_checkpoint``), which also bounds how much WAL a restart has to replay.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .database import Store, map_query_error
from .rows import Rows, request_to_rows

__all__ = ["Prepared", "WriteResult", "Writer", "batch_id_of"]

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


def _with_batch_ids(tables: list[tuple[pa.Table, int]]) -> pa.Table | None:
    parts = [t.append_column("batch_id", pa.array(np.full(t.num_rows, bid, dtype=np.uint64))) for t, bid in tables if t.num_rows]
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
        self.con = store.con
        self.shadow_only = shadow_only
        self.checkpoint_interval_s = checkpoint_interval_s
        self.checkpoint_wal_bytes = checkpoint_wal_bytes
        self._lock = threading.Lock()
        self._last_checkpoint = time.monotonic()
        self._bytes_since_checkpoint = 0

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
        duplicate: acknowledged, not stored again. On an error nothing of the group is stored.
        """
        with self._lock:
            started = time.perf_counter()
            con = self.con
            ids = [p.batch_id for p in batch]
            try:
                con.execute("BEGIN TRANSACTION")
                known = {
                    row[0]
                    for row in con.execute(
                        "SELECT batch_id FROM ingest_batches WHERE batch_id IN (SELECT unnest(?::UBIGINT[]))",
                        [ids],
                    ).fetchall()
                }
                fresh: list[Prepared] = []
                for p in batch:
                    if p.batch_id not in known:
                        known.add(p.batch_id)
                        fresh.append(p)
                fresh_ids = {id(p) for p in fresh}
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
                    self._insert(con, "_otel_shadow_ledger", ledger, _INSERT_LEDGER)
                    self._insert(con, "_otel_shadow_spans", _with_batch_ids([(p.rows.spans, p.batch_id) for p in fresh]), _INSERT_SPANS)
                    self._insert(con, "_otel_shadow_links", _with_batch_ids([(p.rows.links, p.batch_id) for p in fresh]), _INSERT_LINKS)
                    self._insert(con, "_otel_shadow_events", _with_batch_ids([(p.rows.events, p.batch_id) for p in fresh]), _INSERT_EVENTS)
                con.execute("COMMIT")
            except duckdb.Error as exc:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise map_query_error(exc) from exc
            finally:
                for name in ("_otel_shadow_ledger", "_otel_shadow_spans", "_otel_shadow_links", "_otel_shadow_events"):
                    try:
                        con.unregister(name)
                    except duckdb.Error:
                        pass
            elapsed = (time.perf_counter() - started) * 1000
            self._bytes_since_checkpoint += sum(p.size for p in fresh)
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
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                raise map_query_error(exc) from exc
            self._last_checkpoint = time.monotonic()
            self._bytes_since_checkpoint = 0
        return True
