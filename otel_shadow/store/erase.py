"""Erasing one user's data, for deletion requests: whole traces, chosen by trace id or by a key.

``--trace-id ID`` names one trace; ``--key ATTR=VALUE`` every trace in which a span carries that
attribute (on the span or on its resource), such as ``enduser.id=alice``. The trace is the unit,
as for retention: a candidate and its scores live in the trace of their primary, so erasing the
traces erases the spans, their links and events, their pairs and their scores, and nothing else.
The deletion is one transaction, followed by a checkpoint so that the rows leave the write-ahead
log too. What was exported to Parquet by retention before is not touched: erase it there as well.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import duckdb

from ..errors import ConfigError
from .database import Store, map_query_error

__all__ = ["EraseReport", "erase", "find_traces", "parse_key"]

_HEX_TRACE = re.compile(r"[0-9a-fA-F]{32}")
# attribute keys as OpenTelemetry writes them; no quote or backslash can reach the JSON path
_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,255}")
MAX_VALUE_CHARS = 4096
MAX_TRACES = 100_000  # per run: one user's traces; a key that matches more is probably the wrong key


@dataclass
class EraseReport:
    """What ``erase`` removed (or, dry, would remove)."""

    selector: str
    traces: list[str] = field(default_factory=list)  # OTLP hex
    spans: int = 0
    links: int = 0
    events: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "selector": self.selector,
            "dry_run": self.dry_run,
            "traces": list(self.traces),
            "spans": self.spans,
            "span_links": self.links,
            "span_events": self.events,
        }

    def lines(self) -> list[str]:
        if not self.traces:
            return [f"{self.selector}: no trace matches; nothing removed"]
        verb = "would remove" if self.dry_run else "removed"
        shown = ", ".join(self.traces[:20]) + (f" … ({len(self.traces) - 20} more)" if len(self.traces) > 20 else "")
        return [
            f"{self.selector}: {verb} {len(self.traces)} traces ({self.spans} spans, {self.links} links, "
            f"{self.events} events)",
            f"traces: {shown}",
        ]


def parse_trace_id(text: str) -> uuid.UUID:
    """A trace id as OTLP writes it (32 hex digits, dashes allowed); ``ConfigError`` otherwise."""
    compact = text.strip().replace("-", "")
    if not _HEX_TRACE.fullmatch(compact) or int(compact, 16) == 0:
        raise ConfigError(
            f"--trace-id {text[:80]!r} is not a trace id; give its 32 hex digits (4bf92f3577b34da6a3ce929d0e0e4736)"
        )
    return uuid.UUID(hex=compact)


def parse_key(text: str) -> tuple[str, str]:
    """``ATTR=VALUE`` → (attribute key, value); ``ConfigError`` naming what is wrong."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--key {text[:80]!r}: write ATTR=VALUE, e.g. --key enduser.id=alice")
    if not _KEY.fullmatch(key):
        raise ConfigError(
            f"--key {key[:80]!r}: an attribute key has letters, digits and _ . : / - only (at most 255 characters)"
        )
    if not value:
        raise ConfigError(f"--key {key}=: give the value to erase, e.g. --key {key}=alice")
    if len(value) > MAX_VALUE_CHARS:
        raise ConfigError(f"--key {key}=…: the value is longer than {MAX_VALUE_CHARS} characters")
    return key, value


def find_traces(store: Store, *, trace_id: str | None = None, key: str | None = None) -> tuple[str, list[uuid.UUID]]:
    """(a description of the selector, the ids of the stored traces it selects)."""
    if (trace_id is None) == (key is None):
        raise ConfigError("give exactly one of --trace-id ID or --key ATTR=VALUE")
    con = store.con
    try:
        if trace_id is not None:
            trace = parse_trace_id(trace_id)
            found = con.execute("SELECT 1 FROM spans WHERE trace_id = ? LIMIT 1", [trace]).fetchone()
            return f"trace {trace.hex}", [trace] if found else []
        assert key is not None
        name, value = parse_key(key)
        path = f'$."{name}"'
        rows = con.execute(
            "SELECT DISTINCT trace_id FROM spans WHERE attributes ->> ? = ? OR resource_attributes ->> ? = ? "
            "ORDER BY trace_id LIMIT ?",
            [path, value, path, value, MAX_TRACES + 1],
        ).fetchall()
    except duckdb.Error as exc:
        raise map_query_error(exc) from exc
    if len(rows) > MAX_TRACES:
        raise ConfigError(
            f"--key {name}={value[:40]}: more than {MAX_TRACES} traces match; a deletion request names one "
            "user: check the key, or use retention for bulk removal"
        )
    return f"key {name}={value[:80]}", [row[0] for row in rows]


def erase(store: Store, *, trace_id: str | None = None, key: str | None = None, dry_run: bool = False) -> EraseReport:
    """Remove every row of the selected traces in one transaction (``dry_run``: only count them)."""
    if store.read_only:
        raise ValueError("erase needs a store opened for writing")
    selector, traces = find_traces(store, trace_id=trace_id, key=key)
    report = EraseReport(selector, [t.hex for t in traces], dry_run=dry_run)
    if not traces:
        return report
    con = store.con
    chunk = "trace_id IN (SELECT unnest(?::UUID[]))"
    counts: dict[str, int] = {}
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            for table in ("span_events", "span_links", "spans"):
                verb = "SELECT count(*) FROM" if dry_run else "DELETE FROM"
                row = con.execute(f"{verb} {table} WHERE {chunk}", [traces]).fetchone()
                counts[table] = int(row[0]) if row else 0
            con.execute("ROLLBACK" if dry_run else "COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        if not dry_run:
            con.execute("CHECKPOINT")  # the deleted rows leave the write-ahead log
    except duckdb.Error as exc:
        raise map_query_error(exc) from exc
    report.spans, report.links, report.events = counts["spans"], counts["span_links"], counts["span_events"]
    return report
