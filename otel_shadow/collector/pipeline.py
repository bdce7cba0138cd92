"""The collector's pipeline: admit → decode → queue → one writer (group commit) → acknowledge.

    receivers (gRPC, HTTP threads) ── store(payload) ───┐ admission: bytes in flight ≤ limit,
          ▲  Future resolves after COMMIT               │  else RetryableError (503 / UNAVAILABLE)
          │                                             ▼ decode (inline or worker processes)
          └──────────── writer thread: take up to N queued requests (or wait a few ms) →
                        Writer.commit(group) in ONE transaction → resolve every future

Backpressure is a refusal with a retry hint, never a silent drop: a request is refused before it
is read further when the bytes in flight would pass the limit, and refused (retryably) when the
store cannot commit. Nothing is acknowledged before its transaction committed, so a crash can only
lose requests no client was told were stored, and those clients retry them (the batch ledger
makes the retry idempotent).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..errors import PermanentError, RetryableError, StoreError
from ..store import Prepared, Writer, WriteResult
from .decode import DecodePool, decode_payload

__all__ = ["Pipeline", "PipelineStats"]

logger = logging.getLogger("otel_shadow.collector")


@dataclass
class PipelineStats:
    """Self-metrics of the pipeline (read by /metrics and the structured logs)."""

    requests: int = 0
    requests_refused: int = 0  # retryable refusals (overload, storage, shutdown)
    requests_invalid: int = 0  # permanent refusals (malformed)
    requests_duplicate: int = 0
    spans_stored: int = 0
    spans_rejected: int = 0  # invalid spans (partial success)
    spans_skipped: int = 0  # not shadow spans, counted not stored
    batches_committed: int = 0
    commit_failures: int = 0
    last_commit_error: str | None = None
    last_commit_ok_at: float | None = None
    commit_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=2048))

    def snapshot(self) -> dict[str, Any]:
        latencies = sorted(self.commit_ms)

        def q(p: float) -> float | None:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

        data = {k: v for k, v in self.__dict__.items() if k != "commit_ms"}
        data.update(commit_ms_p50=q(0.5), commit_ms_p99=q(0.99))
        return data


class _Item:
    __slots__ = ("prepared", "future", "size")

    def __init__(self, prepared: Prepared, size: int) -> None:
        self.prepared = prepared
        self.future: Future[WriteResult] = Future()
        self.size = size


class Pipeline:
    """Decodes OTLP requests and commits them through one ``Writer``, in groups."""

    def __init__(
        self,
        writer: Writer,
        *,
        max_inflight_bytes: int = 64 * 2**20,
        max_group: int = 16,
        max_wait_ms: float = 2.0,
        retry_after_s: float = 1.0,
        decode_pool: DecodePool | None = None,
    ) -> None:
        self.writer = writer
        self.decode_pool = decode_pool
        self.max_inflight_bytes = max_inflight_bytes
        self.max_group = max_group
        self.max_wait_s = max_wait_ms / 1000
        self.retry_after_s = retry_after_s
        self.stats = PipelineStats()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: collections.deque[_Item] = collections.deque()
        self._inflight_bytes = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="otel-shadow-writer", daemon=True)
        self._thread.start()

    # --- the receivers' side -------------------------------------------------------------------------
    def prepare(self, body: bytes, encoding: str, source: str) -> Prepared:
        """Decode (inline, or in the worker processes); malformed input is a ``PermanentError``."""
        if self.decode_pool is not None:
            return self.decode_pool.decode(body, encoding, source, self.writer.shadow_only)
        return decode_payload(body, encoding, source, self.writer.shadow_only)

    def admit(self, size: int) -> None:
        """Reserve ``size`` bytes in flight, or refuse retryably (before decoding anything)."""
        with self._lock:
            self.stats.requests += 1
            if self._closed:
                self.stats.requests_refused += 1
                raise RetryableError("the collector is shutting down; retry against its replacement", self.retry_after_s)
            if self._inflight_bytes and self._inflight_bytes + size > self.max_inflight_bytes:
                self.stats.requests_refused += 1
                raise RetryableError(
                    f"the collector is at capacity ({self._inflight_bytes} bytes in flight); retry later",
                    self.retry_after_s,
                )
            self._inflight_bytes += size

    def grow(self, held: int, more: int) -> None:
        """Reserve ``more`` bytes for an admitted request that holds ``held`` (a body still being
        read, counted as it arrives, not after), or refuse retryably as ``admit`` does."""
        with self._lock:
            if self._closed:
                self.stats.requests_refused += 1
                raise RetryableError("the collector is shutting down; retry against its replacement", self.retry_after_s)
            if self._inflight_bytes > held and self._inflight_bytes + more > self.max_inflight_bytes:
                self.stats.requests_refused += 1
                raise RetryableError(
                    f"the collector is at capacity ({self._inflight_bytes} bytes in flight); retry later",
                    self.retry_after_s,
                )
            self._inflight_bytes += more

    def release(self, size: int) -> None:
        with self._lock:
            self._inflight_bytes -= size

    def enqueue(self, prepared: Prepared, size: int) -> Future[WriteResult]:
        """Queue an admitted, decoded request for the writer; the future resolves after COMMIT."""
        item = _Item(prepared, size)
        with self._cond:
            if self._closed:
                self._inflight_bytes -= size
                self.stats.requests_refused += 1
                raise RetryableError("the collector is shutting down", self.retry_after_s)
            self._queue.append(item)
            self._cond.notify()
        return item.future

    def store(
        self, body: bytes, encoding: str, source: str, timeout: float = 60.0, *, admitted: bool = False
    ) -> WriteResult:
        """Admit, decode, queue and wait for the commit: the whole path for one request.

        ``admitted``: the caller already holds ``len(body)`` bytes through ``admit``/``grow``; from
        here the pipeline releases them, on every path."""
        size = len(body)
        if not admitted:
            self.admit(size)
        try:
            prepared = self.prepare(body, encoding, source)
        except PermanentError:
            self.release(size)
            with self._lock:
                self.stats.requests_invalid += 1
            raise
        except BaseException:
            self.release(size)
            raise
        return self.enqueue(prepared, size).result(timeout)

    # --- the writer thread -----------------------------------------------------------------------------
    def _take(self) -> list[_Item] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait(0.5)
            group = [self._queue.popleft()]
            deadline = time.monotonic() + self.max_wait_s
            while len(group) < self.max_group:
                if self._queue:
                    group.append(self._queue.popleft())
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return group

    def _run(self) -> None:
        while True:
            group = self._take()
            if group is None:
                return
            self._commit(group)
            try:
                if not self._queue:
                    self.writer.maybe_checkpoint()
            except StoreError as exc:
                logger.warning("checkpoint failed: %s", exc)

    def _commit(self, group: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            results = self.writer.commit([item.prepared for item in group])
        except Exception as exc:
            message = str(exc)
            with self._lock:
                self.stats.commit_failures += 1
                self.stats.last_commit_error = message
                self.stats.requests_refused += len(group)
                self._inflight_bytes -= sum(item.size for item in group)
            logger.error("commit failed, %d requests refused (clients will retry): %s", len(group), message)
            for item in group:
                item.future.set_exception(RetryableError(f"storage unavailable: {message}", 5.0))
            return
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            stats = self.stats
            stats.batches_committed += 1
            stats.last_commit_error = None
            stats.last_commit_ok_at = time.time()
            stats.commit_ms.append(elapsed)
            for result in results:
                stats.spans_stored += result.stored
                stats.spans_rejected += result.rejected
                stats.spans_skipped += result.skipped
                stats.requests_duplicate += int(result.duplicate)
            self._inflight_bytes -= sum(item.size for item in group)
        for item, result in zip(group, results):
            item.future.set_result(result)

    # --- health and shutdown --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """False while shutting down or while the last commit failed."""
        return not self._closed and self.stats.last_commit_error is None

    @property
    def inflight_bytes(self) -> int:
        return self._inflight_bytes

    def stop_accepting(self) -> None:
        """Refuse new requests (retryably) from now on; queued ones still commit."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new requests, commit everything queued, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self.decode_pool is not None:
            self.decode_pool.close()
        try:
            self.writer.maybe_checkpoint(force=True)
        except StoreError as exc:
            logger.warning("final checkpoint failed: %s", exc)
