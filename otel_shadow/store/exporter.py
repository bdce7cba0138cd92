"""The in-process DuckDB exporter: ``OTEL_TRACES_EXPORTER=duckdb``, the embedded default.

Spans are encoded to OTLP by OpenTelemetry's own encoder and written by the same ``Writer`` the
collector uses, so they land as the same rows. The exporter never raises into the application:
when the database cannot be opened (another process holds it; DuckDB allows one writer) it says
so once, clearly, and counts the spans it could not write instead of dropping them silently.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..environment_variables import DEFAULT_DB, OTEL_SHADOW_DB
from ..errors import StoreError
from .database import Store
from .writer import Writer

__all__ = ["DuckDBSpanExporter"]

logger = logging.getLogger("otel_shadow")


class DuckDBSpanExporter(SpanExporter):
    """Write finished spans to a DuckDB file (``OTEL_SHADOW_DB``, default ``otel-shadow.duckdb``).

    Use it behind a ``BatchSpanProcessor`` (what ``opentelemetry-instrument`` does), so writing
    happens on the processor's thread, in batches, never on the user's call.
    """

    def __init__(self, path: str | None = None, *, shadow_only: bool = False, store: Store | None = None) -> None:
        # ``store``: write into this already open store, which the caller closes. A process that also
        # reads the file (``otel-shadow score``) can hold only one DuckDB connection to it.
        self.path = store.path if store is not None else path or os.environ.get(OTEL_SHADOW_DB) or DEFAULT_DB
        self.shadow_only = shadow_only
        self._lock = threading.Lock()
        self._store: Store | None = store
        self._owns_store = store is None
        self._writer: Writer | None = Writer(store, shadow_only=shadow_only) if store is not None else None
        self._open_error: StoreError | None = None
        self._reported = False
        self.exported = 0
        self.failed = 0  # spans that could not be written, with the reason logged once
        self._shutdown = False

    def _ensure_open(self) -> Writer | None:
        if self._writer is not None:
            return self._writer
        try:
            self._store = Store.open(self.path)
            self._writer = Writer(self._store, shadow_only=self.shadow_only)
            self._open_error = None
            return self._writer
        except StoreError as exc:
            self._open_error = exc
            return None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        with self._lock:
            try:
                writer = self._ensure_open()
                if writer is None:
                    self._fail(len(spans), self._open_error)
                    return SpanExportResult.FAILURE
                request = encode_spans(spans)
                writer.write(request, source="exporter")
                writer.maybe_checkpoint()
                self.exported += len(spans)
                return SpanExportResult.SUCCESS
            except Exception as exc:  # never raise into the application
                self._fail(len(spans), exc)
                return SpanExportResult.FAILURE

    def _fail(self, count: int, exc: BaseException | None) -> None:
        self.failed += count
        if not self._reported:
            self._reported = True
            logger.error(
                "otel-shadow: the DuckDB exporter cannot write to '%s': %s. Spans it cannot write are "
                "counted (DuckDBSpanExporter.failed), not stored.",
                self.path,
                exc,
            )
        else:
            logger.debug("otel-shadow: %d more spans not written (%d so far): %s", count, self.failed, exc)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            if self._store is not None and self._owns_store:
                try:
                    self._store.close()
                except Exception:
                    logger.debug("otel-shadow: closing the store failed", exc_info=True)
                self._store = None
                self._writer = None
            if self.failed:
                logger.error("otel-shadow: %d spans could not be written to '%s'", self.failed, self.path)
