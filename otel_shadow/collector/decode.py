"""Decoding a request body into rows: inline, or in worker processes to use every core.

Decoding OTLP in Python (attribute conversion above all) is CPU-bound and holds the GIL, so one
process decodes on one core. With ``decode_workers`` > 0 the collector decodes in a pool of
processes (spawned, never forked from a process that runs gRPC threads); the
worker returns Arrow tables, which pickle as buffers, and the one writer stays in the main process.
A dead worker is replaced (``DecodePool``), so an OOM kill costs a retry, not the collector.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from google.protobuf.message import DecodeError

from ..errors import PermanentError, RetryableError
from ..store import Prepared, batch_id_of, request_to_rows
from .otlp_json import InvalidOTLP, parse_otlp_json

__all__ = ["DecodePool", "decode_payload", "parse_body"]

logger = logging.getLogger("otel_shadow.collector")


def parse_body(body: bytes, encoding: str) -> bytes:
    """A body as OTLP protobuf bytes (JSON is converted); malformed JSON is a ``PermanentError``.

    Protobuf bodies are returned as they are: they are parsed once, by ``request_to_rows``.
    """
    if encoding == "json":
        try:
            return parse_otlp_json(body).SerializeToString()
        except InvalidOTLP as exc:
            raise PermanentError(str(exc)) from exc
    return body


def decode_payload(body: bytes, encoding: str, source: str, shadow_only: bool) -> Prepared:
    """Body → rows, ready for ``Writer.commit``; the ledger id is the hash of the bytes received.

    A body that is not a valid ``ExportTraceServiceRequest`` is a ``PermanentError``.
    """
    try:
        rows = request_to_rows(parse_body(body, encoding), shadow_only=shadow_only)
    except DecodeError as exc:
        raise PermanentError(f"body is not a valid OTLP protobuf ExportTraceServiceRequest: {exc}") from exc
    return Prepared(rows, batch_id_of(body), source, len(body))


class DecodePool:
    """``decode_payload`` in worker processes (spawned: never a fork of a process running gRPC threads).

    A worker that dies (an OOM kill, a crash) breaks a ``ProcessPoolExecutor`` for good, so the
    pool replaces its executor with a new one and decodes the request in hand once more; if that
    fails too, the request is refused retryably (503 / UNAVAILABLE), never answered as a server
    bug. ``failure`` says why the pool cannot decode right now (the executor could not be
    replaced); the collector reports itself unhealthy meanwhile.

    Each worker watches the collector's process and exits when it is gone, so a collector killed
    with ``kill -9`` leaves no orphan behind.
    """

    def __init__(self, workers: int, retry_after_s: float = 1.0) -> None:
        self.workers = workers
        self.retry_after_s = retry_after_s
        self.restarts = 0
        self.failure: str | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.executor = self._new_executor()
        # start the workers now (imports included), not on the first request
        list(self.executor.map(_warm, range(workers)))

    def _new_executor(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_watch_parent, initargs=(os.getpid(),)
        )

    def decode(self, body: bytes, encoding: str, source: str, shadow_only: bool) -> Prepared:
        """Decode in a worker; a dead worker costs one retry on a fresh pool, then a retryable refusal."""
        for attempt in (1, 2):
            executor = self.executor
            try:
                return executor.submit(decode_payload, body, encoding, source, shadow_only).result()
            except BrokenProcessPool:
                if attempt == 2 or not self._replace(executor):
                    break
            except (RuntimeError, CancelledError) as exc:  # submitted or queued at shutdown
                raise RetryableError("the collector is shutting down; retry", self.retry_after_s) from exc
        raise RetryableError(
            "a decode worker process died while decoding this request (out of memory?); retry later",
            self.retry_after_s,
        )

    def _replace(self, broken: ProcessPoolExecutor) -> bool:
        """Swap ``broken`` for a new executor (once, whichever thread sees it first); False if impossible."""
        with self._lock:
            if self._closed:
                return False
            if self.executor is not broken:
                return True  # another thread replaced it already
            try:
                fresh = self._new_executor()
            except Exception as exc:  # the OS refuses new processes (EAGAIN, ENOMEM)
                self.failure = f"cannot start decode workers: {exc}"
                logger.error("decode pool broken and not replaced: %s", exc)
                return False
            self.executor = fresh
            self.restarts += 1
            self.failure = None
        logger.warning("a decode worker died; decode pool replaced (restart %d)", self.restarts)
        _shutdown(broken, timeout=0.0)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers: let running decodes finish for up to ``timeout`` s, then kill them."""
        with self._lock:
            self._closed = True
            executor = self.executor
        _shutdown(executor, timeout)


def _shutdown(executor: ProcessPoolExecutor, timeout: float) -> None:
    """Shut ``executor`` down without ever blocking longer than ``timeout`` (a stuck or stopped
    worker is killed: nothing it holds was acknowledged)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(1.0)


def _warm(_: int) -> int:
    return os.getpid()


def _watch_parent(pid: int) -> None:
    """In a worker: exit as soon as the collector process ``pid`` no longer exists.

    Also turns the cyclic garbage collector off: a worker only builds acyclic data (protobuf
    messages, dicts, Arrow buffers) that reference counting frees, and the collector's scans of
    that churn cost ~10% of decoding. This is the worker's own process, never the user's.
    """
    import gc
    import threading
    import time

    gc.disable()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # exists, but not ours to signal
                pass

    threading.Thread(target=watch, name="otel-shadow-parent-watch", daemon=True).start()


def default_workers() -> int:
    """Decode in worker processes when there is more than one core."""
    cpus = os.cpu_count() or 1
    return min(cpus, 4) if cpus > 1 else 0
