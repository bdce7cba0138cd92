"""The collector heals itself or says it is sick: a dead decode worker is replaced, a database
DuckDB invalidated on a full disk is reopened once space is back, and /readyz and /healthz say
what is true meanwhile. Real processes, a real (tiny) file system, real OTLP over loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from otel_shadow.collector import Collector
from otel_shadow.errors import StoreError
from otel_shadow.store import Store

from ..store.otlp import pair, request
from .test_otlp import grpc_export, http_url, query

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _workers(collector: Collector) -> list[int]:
    pool = collector.pipeline.decode_pool
    assert pool is not None
    return list(pool.executor._processes)  # the live worker processes of the current executor


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_a_killed_decode_worker_is_replaced_and_spans_still_land(start_collector: Callable[..., Collector]) -> None:
    collector = start_collector(decode_workers=1)
    grpc_export(collector, request(*pair()).SerializeToString())
    (worker,) = _workers(collector)
    os.kill(worker, signal.SIGKILL)  # what the OOM killer does
    _wait_for(lambda: not _alive(worker))
    # the next requests find the pool broken: it is replaced and they are decoded and stored
    ExportTraceServiceResponse.FromString(grpc_export(collector, request(*pair()).SerializeToString()))
    answer = httpx.post(http_url(collector), content=request(*pair()).SerializeToString(), headers=PROTOBUF, timeout=30)
    assert answer.status_code == 200, answer.content
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(3,)]
    assert collector.stats()["decode_pool_restarts"] == 1
    assert _workers(collector) and worker not in _workers(collector)
    assert httpx.get(http_url(collector, "/healthz")).status_code == 200
    assert httpx.get(http_url(collector, "/readyz")).status_code == 200


def test_the_request_a_dying_worker_held_is_decoded_again_and_stored(start_collector: Callable[..., Collector]) -> None:
    collector = start_collector(decode_workers=1)
    grpc_export(collector, request(*pair()).SerializeToString())
    (worker,) = _workers(collector)
    os.kill(worker, signal.SIGSTOP)  # the worker hangs with the next request in hand…
    answers: list[Any] = []
    sender = threading.Thread(
        target=lambda: answers.append(grpc_export(collector, request(*pair()).SerializeToString()))
    )
    sender.start()
    _wait_for(lambda: collector.pipeline.inflight_bytes > 0)
    time.sleep(0.2)  # the request is in the worker's queue or in its hands
    os.kill(worker, signal.SIGKILL)  # …and dies with it
    sender.join(60)
    assert len(answers) == 1  # acknowledged (OK), not UNKNOWN
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(2,)]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- a full disk --------------------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a real file system that really fills up (needs root to mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Take all the free space of ``disk`` but ``leave`` bytes; delete the returned file to free it."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def _sender(collector: Collector) -> Iterator[tuple[bytes, int]]:
    """Requests of 100 pairs, each with the gRPC status it got (until the store refuses)."""
    while True:
        body = request(*[s for _ in range(100) for s in pair()]).SerializeToString()
        try:
            grpc_export(collector, body)
            yield body, 0
        except grpc.RpcError as exc:
            yield body, exc.code().value[0]


def test_a_database_invalidated_on_a_full_disk_is_reopened_once_space_is_back(
    start_collector: Callable[..., Collector], tiny_disk: Path
) -> None:
    collector = start_collector(db=str(tiny_disk / "c.duckdb"), decode_workers=0, unhealthy_after_s=1.0)
    acked: list[bytes] = []
    refused: list[bytes] = []
    filler = _fill(tiny_disk, leave=400_000)
    for body, code in _sender(collector):
        if code == 0:
            acked.append(body)
            continue
        assert code == grpc.StatusCode.UNAVAILABLE.value[0]  # retryable, never UNKNOWN
        refused.append(body)
        break
    # the checkpoint that comes on schedule needs space the disk no longer has: DuckDB invalidates
    # the database (the writer thread may have run one already, after a probe that still fitted)
    with contextlib.suppress(StoreError):
        collector.pipeline.writer.maybe_checkpoint(force=True)
    assert collector.pipeline.writer.invalidated is not None
    # while it cannot commit: refused retryably, /readyz says why, and /healthz once that lasts
    answer = httpx.post(http_url(collector), content=refused[0], headers=PROTOBUF, timeout=30)
    assert answer.status_code == 503 and "Retry-After" in answer.headers
    ready = httpx.get(http_url(collector, "/readyz"))
    assert ready.status_code == 503 and "No space left" in ready.text
    _wait_for(lambda: httpx.get(http_url(collector, "/healthz")).status_code == 503)
    assert "has not committed" in httpx.get(http_url(collector, "/healthz")).text
    filler.unlink()  # the operator frees space: the collector reopens the database by itself
    _wait_for(lambda: httpx.get(http_url(collector, "/readyz")).status_code == 200)
    assert httpx.get(http_url(collector, "/healthz")).status_code == 200
    # the refused request is retried by its client (as exporters do), and it lands; the acknowledged
    # ones are all there, none twice, even when a client re-sends them
    for body in refused + acked[:3]:
        grpc_export(collector, body)
    assert collector.stats()["store_reopens"] == 1
    expected = (len(acked) + len(refused)) * 200
    assert query(collector, "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans") == [(expected, expected)]


def test_a_restart_on_a_full_disk_says_no_space_left_in_one_line(tiny_disk: Path) -> None:
    db = tiny_disk / "c.duckdb"
    Store.open(db).close()
    _fill(tiny_disk, leave=0)
    out = subprocess.run(
        [sys.executable, "-m", "otel_shadow", "collector", "--db", str(db), "--grpc-port", "0", "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    (line,) = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "No space left" in line and str(db) in line


def test_a_store_that_keeps_failing_makes_readyz_then_healthz_say_so(
    start_collector: Callable[..., Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_shadow.store import Writer

    collector = start_collector(unhealthy_after_s=1.0, decode_workers=0)

    def broken(self: Writer, *args: Any) -> Any:
        raise StoreError("no space left on the device: simulated")

    monkeypatch.setattr(Writer, "commit", broken)
    monkeypatch.setattr(Writer, "probe", broken)
    answer = httpx.post(http_url(collector), content=request(*pair()).SerializeToString(), headers=PROTOBUF)
    assert answer.status_code == 503
    assert "storage unavailable" in status_pb2.Status.FromString(answer.content).message
    assert httpx.get(http_url(collector, "/readyz")).status_code == 503
    _wait_for(lambda: httpx.get(http_url(collector, "/healthz")).status_code == 503)
    monkeypatch.undo()  # the store works again: the writer's probe finds out without any traffic
    _wait_for(lambda: httpx.get(http_url(collector, "/readyz")).status_code == 200)
    assert httpx.get(http_url(collector, "/healthz")).status_code == 200
