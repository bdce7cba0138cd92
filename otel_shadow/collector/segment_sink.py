"""The collector's segment tier: every ``interval_s`` the committed rows become a Parquet segment.

Runs beside the pipeline, never in its way: a request is acknowledged after its DuckDB commit,
whatever happens here, and a segment is made only from committed rows (``store.segments``). A
failure to write a segment (a full disk) is logged, counted (``segment_failures``,
``last_segment_error`` in the collector's metrics) and retried at the next tick; the rows wait
in the DuckDB file meanwhile, so nothing acknowledged is lost.

Health: failing for longer than ``unhealthy_after_s`` (the collector's ``--unhealthy-after``) makes
``health()`` give the reason, which /healthz answers with a 503, since the DuckDB file then grows
without bound; the first segment written again clears it. Readiness is not touched: ingest still
commits, so refusing requests would only push the spans back to the clients.

Start: segments a kill left claimed are written again (``SegmentWriter.recover``). Stop: one
last segment holds whatever was committed until then.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from ..store import Store
from ..store.segments import SegmentInfo, SegmentWriter
from .pipeline import _without_paths

__all__ = ["SegmentSink", "SegmentStats"]

logger = logging.getLogger("otel_shadow.collector")


@dataclass
class SegmentStats:
    """Self-metrics of the segment tier (in the collector's /metrics and stats logs)."""

    segments_closed: int = 0
    segments_recovered: int = 0
    segment_spans: int = 0
    segment_failures: int = 0
    last_segment_error: str | None = None
    last_segment_at: float | None = None

    def snapshot(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SegmentSink:
    """A thread that closes a segment every ``interval_s`` seconds (when anything new committed)."""

    def __init__(
        self,
        store: Store,
        root: str,
        *,
        interval_s: float = 60.0,
        collector_id: str | None = None,
        unhealthy_after_s: float = 300.0,
    ) -> None:
        if interval_s <= 0:
            from ..errors import ConfigError

            raise ConfigError(f"--segment-seconds must be more than 0 (got {interval_s:g})")
        self.writer = SegmentWriter(store, root, collector_id)
        self.interval_s = interval_s
        self.stats = SegmentStats()
        self.unhealthy_after_s = unhealthy_after_s
        # (monotonic time of the first failure in a row, its error); one attribute, so that
        # ``health`` reads both at once without waiting for the lock a slow write holds
        self._failing: tuple[float, str] | None = None
        self._lock = threading.Lock()  # one segment at a time (the thread, and the final one at stop)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-shadow-segments", daemon=True)

    @property
    def collector_id(self) -> str:
        return self.writer.collector_id

    def start(self) -> None:
        """Write again what a kill left claimed, then start closing segments on schedule."""
        with self._lock:
            recovered = self.writer.recover()
        for info in recovered:
            self._closed(info)
        self.stats.segments_recovered += len(recovered)
        self._thread.start()

    def close_now(self) -> SegmentInfo | None:
        """Close a segment of whatever committed since the last one; None when nothing did."""
        with self._lock:
            try:
                info = self.writer.close_segment()
            except (StoreError, OSError) as exc:
                self._failed(exc)
                raise
        if info is not None:
            self._closed(info)
        with self._lock:
            self.stats.last_segment_error = None
            if self._failing is not None:
                logger.warning("segments are written again (failing for %.0f s)", time.monotonic() - self._failing[0])
            self._failing = None
        return info

    def health(self) -> str | None:
        """Why this collector needs attention (None: fine): no segment could be written for more
        than ``unhealthy_after_s``. Quoted names (paths) are left out: /healthz answers anyone."""
        failing = self._failing
        if failing is None:
            return None
        since, error = failing
        elapsed = time.monotonic() - since
        if elapsed <= self.unhealthy_after_s:
            return None
        return (
            f"no Parquet segment written for {elapsed:.0f} s (more than {self.unhealthy_after_s:g} s; "
            f"the rows wait in the DuckDB file): {_without_paths(error)}"
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.close_now()
            except (StoreError, OSError) as exc:
                logger.error(
                    "could not close a segment (its rows wait in the DuckDB file; retried in %g s): %s",
                    self.interval_s,
                    exc,
                )
            except Exception:  # a bug: the thread must outlive it, or no segment is closed again
                logger.exception("unexpected error while closing a segment")

    def _closed(self, info: SegmentInfo) -> None:
        with self._lock:
            self.stats.segments_closed += 1
            self.stats.segment_spans += info.spans
            self.stats.last_segment_at = time.time()
        logger.info(
            "segment closed",
            extra={
                "fields": {"segment": f"{info.partition}/{info.name}", "spans": info.spans, "batches": info.batches}
            },
        )

    def _failed(self, exc: BaseException) -> None:
        self.stats.segment_failures += 1
        self.stats.last_segment_error = str(exc)
        since = self._failing[0] if self._failing is not None else time.monotonic()
        self._failing = (since, str(exc))

    def stop(self, timeout: float = 10.0, *, final: bool = True) -> bool:
        """Stop the schedule, then (``final``) close one last segment (call after the pipeline
        committed its queue). False if it could not be closed: its rows stay in the DuckDB file,
        and the next start closes them."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not final:
            return True
        try:
            self.close_now()
        except (StoreError, OSError) as exc:
            logger.error(
                "the last segment could not be closed (its rows stay in the DuckDB file; the next start closes them): %s",
                exc,
            )
            return False
        return True
