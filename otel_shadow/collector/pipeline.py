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

Healing: while commits fail (a full disk, a database DuckDB invalidated), requests are refused
retryably and the writer thread probes the store with backoff (``Writer.probe`` reopens an
invalidated database); the first success makes the pipeline ready again. ``readiness()`` and
``health()`` say why it is not: unready while it cannot commit, unhealthy once that has lasted
``unhealthy_after_s`` (so an orchestrator restarts it) or when the writer thread or the decode
workers are gone. A request DuckDB refuses for its data is the ``Writer``'s to isolate: it never
makes the pipeline unready.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import PermanentError, RetryableError, StoreError
from ..store import Prepared, Writer, WriteResult
from .decode import DecodePool, decode_payload

__all__ = ["Maintenance", "Pipeline", "PipelineStats"]


class Maintenance(Protocol):
    """Work the writer thread runs in small steps between commits (retention): ``due`` says
    whether a step should run now, ``step`` runs one (short: it delays the next commit)."""

    def due(self) -> bool: ...

    def step(self) -> bool: ...


logger = logging.getLogger("otel_shadow.collector")

_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def _without_paths(message: str) -> str:
    """A store error for the unauthenticated health endpoints: quoted names (file paths) left out;
    the log has the whole message."""
    return _QUOTED.sub("…", message)


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
    store_reopens: int = 0
    last_commit_error: str | None = None
    last_commit_ok_at: float | None = None
    commit_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=2048))
    maintenance_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=2048))

    def snapshot(self) -> dict[str, Any]:
        latencies = sorted(self.commit_ms)

        def q(p: float) -> float | None:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

        data = {k: v for k, v in self.__dict__.items() if k not in ("commit_ms", "maintenance_ms")}
        data.update(commit_ms_p50=q(0.5), commit_ms_p99=q(0.99))
        data.update(
            maintenance_steps=len(self.maintenance_ms), maintenance_ms_max=max(self.maintenance_ms, default=None)
        )
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
        unhealthy_after_s: float = 300.0,
        heal_max_interval_s: float = 15.0,
        maintenance: Maintenance | None = None,
        processor: Callable[[Prepared], Prepared] | None = None,
    ) -> None:
        self.writer = writer
        self.decode_pool = decode_pool
        self.maintenance = maintenance
        self.processor = processor  # applied to every decoded request before it is queued (redaction)
        self.max_inflight_bytes = max_inflight_bytes
        self.max_group = max_group
        self.max_wait_s = max_wait_ms / 1000
        self.retry_after_s = retry_after_s
        self.unhealthy_after_s = unhealthy_after_s
        self.heal_max_interval_s = heal_max_interval_s
        self.stats = PipelineStats()
        self._failing_since: float | None = None  # monotonic time of the first failed commit in a row
        # more reasons this process needs a restart, asked by ``health`` after its own (the segment sink's)
        self.health_checks: list[Callable[[], str | None]] = []
        self._next_heal = 0.0
        self._heal_interval = 0.5
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
            prepared = self.decode_pool.decode(body, encoding, source, self.writer.shadow_only)
        else:
            prepared = decode_payload(body, encoding, source, self.writer.shadow_only)
        return prepared if self.processor is None else self.processor(prepared)

    def admit(self, size: int) -> None:
        """Reserve ``size`` bytes in flight, or refuse retryably (before decoding anything)."""
        with self._lock:
            self.stats.requests += 1
            if self._closed:
                self.stats.requests_refused += 1
                raise RetryableError(
                    "the collector is shutting down; retry against its replacement", self.retry_after_s
                )
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
                raise RetryableError(
                    "the collector is shutting down; retry against its replacement", self.retry_after_s
                )
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
        """The next commit group; [] when it is time to probe a failing store; None once closed."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if self._failing_since is not None and time.monotonic() >= self._next_heal:
                    return []
                if self._maintenance_due():
                    return []
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
            try:
                if group:
                    self._commit(group)
                elif self._failing_since is not None:
                    self._heal()
                if self._maintenance_due():
                    self._maintain()
                # never checkpoint while commits fail: a checkpoint on a full disk invalidates the database
                if not self._queue and self._failing_since is None:
                    self.writer.maybe_checkpoint()
            except StoreError as exc:
                logger.warning("checkpoint failed: %s", exc)
                self._failed(str(exc))
            except Exception:  # a bug; the writer thread must outlive it, or nothing commits again
                logger.exception("unexpected error in the writer thread")

    def _commit(self, group: list[_Item]) -> None:
        started = time.perf_counter()
        reopened = self.writer.invalidated is not None
        try:
            # reopening replays the WAL: at the healing pace, not once per request a client retries
            if reopened and time.monotonic() < self._next_heal:
                raise StoreError(self.stats.last_commit_error or "the database is being reopened")
            results = self.writer.commit([item.prepared for item in group])
        except Exception as exc:
            message = str(exc)
            with self._lock:
                self.stats.requests_refused += len(group)
                self._inflight_bytes -= sum(item.size for item in group)
            if not reopened or time.monotonic() >= self._next_heal:
                self._failed(message)
            logger.error("commit failed, %d requests refused (clients will retry): %s", len(group), message)
            for item in group:
                item.future.set_exception(RetryableError(f"storage unavailable: {message}", 5.0))
            return
        elapsed = (time.perf_counter() - started) * 1000
        self._recovered(reopened)
        with self._lock:
            stats = self.stats
            stats.batches_committed += 1
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

    def _maintenance_due(self) -> bool:
        """A maintenance step should run: never while commits fail or after close."""
        return (
            self.maintenance is not None and self._failing_since is None and not self._closed and self.maintenance.due()
        )

    def _maintain(self) -> None:
        """One maintenance step between two commit groups; its failure is logged, never ingest's."""
        assert self.maintenance is not None
        started = time.perf_counter()
        try:
            self.maintenance.step()
        except Exception as exc:
            logger.error("maintenance step failed (ingest goes on; tried again later): %s", exc)
        finally:
            self.stats.maintenance_ms.append((time.perf_counter() - started) * 1000)

    def _heal(self) -> None:
        """Probe a failing store (reopening it if DuckDB invalidated it); back off while it fails."""
        reopened = self.writer.invalidated is not None
        try:
            self.writer.probe()
        except StoreError as exc:
            self._failed(str(exc))
            return
        self._recovered(reopened)

    def _failed(self, message: str) -> None:
        with self._lock:
            self.stats.commit_failures += 1
            self.stats.last_commit_error = message
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                self._heal_interval = 0.5
            else:
                self._heal_interval = min(self._heal_interval * 2, self.heal_max_interval_s)
            self._next_heal = now + self._heal_interval

    def _recovered(self, reopened: bool) -> None:
        with self._lock:
            was_failing = self._failing_since is not None
            self._failing_since = None
            self.stats.last_commit_error = None
            if reopened and self.writer.invalidated is None:
                self.stats.store_reopens += 1
        if was_failing:
            logger.warning("the store commits again; ready")

    # --- health and shutdown --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """False while shutting down or while the store cannot commit (see ``readiness``)."""
        return self.readiness() is None

    def readiness(self) -> str | None:
        """Why new requests would be refused now (None: ready)."""
        if self._closed:
            return "shutting down"
        error = self.stats.last_commit_error
        if error is not None:
            return f"commits failing: {_without_paths(error)}"
        if self.decode_pool is not None and self.decode_pool.failure is not None:
            return self.decode_pool.failure
        return None

    def health(self) -> str | None:
        """Why this process needs a restart (None: healthy): its writer thread is gone, its
        decode workers cannot be started, or the store has been unusable for ``unhealthy_after_s``."""
        if not self._thread.is_alive() and not self._closed:
            return "the writer thread stopped"
        if self.decode_pool is not None and self.decode_pool.failure is not None:
            return self.decode_pool.failure
        since = self._failing_since
        if since is not None and time.monotonic() - since > self.unhealthy_after_s:
            return (
                f"the store has not committed for {time.monotonic() - since:.0f} s "
                f"(more than {self.unhealthy_after_s:g} s): {_without_paths(self.stats.last_commit_error or '')}"
            )
        for check in self.health_checks:
            problem = check()
            if problem is not None:
                return problem
        return None

    @property
    def inflight_bytes(self) -> int:
        return self._inflight_bytes

    def stop_accepting(self) -> None:
        """Refuse new requests (retryably) from now on; queued ones still commit."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> bool:
        """Refuse new requests, commit everything queued, then stop the writer thread, all within
        ``timeout`` s. Past it, what is still queued is refused retryably (never acknowledged, so
        its clients send it again) and False is returned: the writer may still be in a commit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        drained = not self._thread.is_alive()
        with self._cond:
            abandoned = list(self._queue)
            self._queue.clear()
            self._inflight_bytes -= sum(item.size for item in abandoned)
            self.stats.requests_refused += len(abandoned)
        for item in abandoned:
            item.future.set_exception(
                RetryableError("the collector stopped before committing this request; retry", self.retry_after_s)
            )
        if not drained:
            logger.error(
                "the writer did not finish within %.1f s; %d queued requests refused (their clients retry)",
                timeout,
                len(abandoned),
            )
        if self.decode_pool is not None:
            self.decode_pool.close(max(0.0, deadline - time.monotonic()))
        if drained and self._failing_since is None:
            try:
                self.writer.maybe_checkpoint(force=True)
            except StoreError as exc:
                logger.warning("final checkpoint failed: %s", exc)
        return drained
