"""Decoding a request body into rows: inline, or in worker processes to use every core.

Decoding OTLP in Python (attribute conversion above all) is CPU-bound and holds the GIL, so one
process decodes on one core. With ``decode_workers`` > 0 the collector decodes in a pool of
processes (spawned, never forked from a process that runs gRPC threads); the
worker returns Arrow tables, which pickle as buffers, and the one writer stays in the main process.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from google.protobuf.message import DecodeError

from ..errors import PermanentError
from ..store import Prepared, batch_id_of, request_to_rows
from .otlp_json import InvalidOTLP, parse_otlp_json

__all__ = ["DecodePool", "decode_payload", "parse_body"]


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

    Each worker watches the collector's process and exits when it is gone, so a collector killed
    with ``kill -9`` leaves no orphan behind.
    """

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_watch_parent, initargs=(os.getpid(),)
        )
        # start the workers now (imports included), not on the first request
        list(self.executor.map(_warm, range(workers)))

    def decode(self, body: bytes, encoding: str, source: str, shadow_only: bool) -> Prepared:
        return self.executor.submit(decode_payload, body, encoding, source, shadow_only).result()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


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
