"""Backpressure, storage failure, kill -9 under load, SIGTERM, fuzzed input: nothing acked is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_shadow.collector import Collector
from otel_shadow.errors import StoreError
from otel_shadow.store import Store, Writer

from ..store.otlp import pair, request
from .test_otlp import grpc_export, http_url, query


def test_overload_is_refused_with_retry_hints_not_dropped(
    start_collector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = start_collector(max_inflight_bytes=1)  # one request in flight at a time
    release = threading.Event()
    real_commit = Writer.commit

    def slow_commit(self: Writer, batch: Any) -> Any:
        release.wait(20)
        return real_commit(self, batch)

    monkeypatch.setattr(Writer, "commit", slow_commit)
    first = threading.Thread(target=grpc_export, args=(collector, request(*pair()).SerializeToString()))
    first.start()
    deadline = time.monotonic() + 10
    while collector.pipeline.inflight_bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(collector, request(*pair()).SerializeToString())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(info.value.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.seconds >= 1
    assert "google.rpc.retryinfo-bin" in trailers
    answer = httpx.post(
        http_url(collector),
        content=request(*pair()).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1
    release.set()
    first.join(20)
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(1,)]
    assert collector.stats()["requests_refused"] == 2


def test_storage_failure_is_retryable_and_readiness_follows(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit, real_probe = Writer.commit, Writer.probe

    def failing(self: Writer, *batch: Any) -> Any:
        raise StoreError("no space left on the device: simulated")

    monkeypatch.setattr(Writer, "commit", failing)
    monkeypatch.setattr(Writer, "probe", failing)  # the writer's own check that the store works again
    answer = httpx.post(
        http_url(collector),
        content=request(*pair()).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 503 and "storage unavailable" in status_pb2.Status.FromString(answer.content).message
    ready = httpx.get(http_url(collector, "/readyz"))
    assert ready.status_code == 503 and "commits failing" in ready.text
    monkeypatch.setattr(Writer, "commit", real_commit)
    monkeypatch.setattr(Writer, "probe", real_probe)
    assert (
        httpx.post(
            http_url(collector),
            content=request(*pair()).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        ).status_code
        == 200
    )
    assert httpx.get(http_url(collector, "/readyz")).status_code == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), as_json=st.booleans())
def test_fuzzed_bodies_never_crash_the_collector(collector: Collector, body: bytes, as_json: bool) -> None:
    content_type = "application/json" if as_json else "application/x-protobuf"
    answer = httpx.post(http_url(collector), content=body, headers={"Content-Type": content_type}, timeout=10)
    assert answer.status_code in (200, 400)
    assert httpx.get(http_url(collector, "/healthz")).status_code == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "resourceSpans",
                        "scopeSpans",
                        "spans",
                        "traceId",
                        "spanId",
                        "attributes",
                        "key",
                        "value",
                        "name",
                        "links",
                        "x",
                    ]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=15,
    )
)
def test_fuzzed_otlp_json_shapes_are_400_or_stored(collector: Collector, doc: Any) -> None:
    answer = httpx.post(
        http_url(collector), content=json.dumps(doc), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert answer.status_code in (200, 400), answer.text
    grpc_export(collector, request(*pair()).SerializeToString())  # the next good request still lands


COLLECTOR = [
    sys.executable,
    "-m",
    "otel_shadow",
    "collector",
    "--grpc-port",
    "0",
    "--http-port",
    "0",
    "--log-level",
    "WARNING",
]


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _ready(info: dict[str, Any]) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{info['http_port']}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _start(db: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A collector process, once it answers ready; its stderr goes to <db>.stderr (no pipe left open)."""
    info_path = Path(f"{db}.collector.json")
    info_path.unlink(missing_ok=True)
    stderr = Path(f"{db}.stderr")
    with stderr.open("w") as err:  # the child has its own copy of the descriptor
        proc = subprocess.Popen([*COLLECTOR, "--db", str(db), *args], stdout=subprocess.DEVNULL, stderr=err, text=True)
    deadline = time.monotonic() + 30
    while not info_path.exists():
        assert proc.poll() is None, stderr.read_text()
        assert time.monotonic() < deadline, "collector did not start"
        time.sleep(0.05)
    info = json.loads(info_path.read_text())
    _wait_for(lambda: _ready(info), 30, "the collector did not become ready")
    return proc, info


def _children(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _decode_workers(pid: int) -> list[int]:
    """The decode worker processes (not multiprocessing's resource tracker)."""
    import psutil

    return [c.pid for c in psutil.Process(pid).children() if any("spawn_main" in part for part in c.cmdline())]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


LOADER = textwrap.dedent(
    """
    import os, sys, grpc, json
    sys.path.insert(0, sys.argv[3])
    from tests.store.otlp import pair, request
    channel = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
    call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    out = open(sys.argv[2], "a")
    i = 0
    while True:
        body = request(*[s for _ in range(100) for s in pair()]).SerializeToString()
        try:
            call(body, timeout=10)
        except grpc.RpcError:
            break
        # acknowledged: record the batch (its bytes, so it can be re-sent) before the next one
        out.write(body.hex() + "\\n"); out.flush(); os.fsync(out.fileno())
        i += 1
    """
)


def test_kill_9_under_load_loses_no_acknowledged_span(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    acked = tmp_path / "acked.txt"
    proc, info = _start(db)
    loaders = [
        subprocess.Popen(
            [sys.executable, "-c", LOADER, str(info["grpc_port"]), str(acked), str(Path(__file__).parents[2])]
        )
        for _ in range(2)
    ]
    # killed under load: once the loaders have had batches acknowledged, while they send more
    _wait_for(lambda: acked.exists() and len(acked.read_text().split()) > 10, 60, "the load did not get going")
    workers = _children(proc.pid)
    assert workers, "the collector should decode in worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for loader in loaders:
        loader.wait(30)
    batches = [bytes.fromhex(line) for line in acked.read_text().split()]
    assert len(batches) > 5, "the load did not get going"
    expected = len(batches) * 200
    Path(f"{db}.collector.json").unlink(missing_ok=True)  # left behind by the kill
    with Store.open(db, read_only=True) as store:
        stored = store.query("SELECT count(*) FROM spans").rows[0][0]
    assert stored >= expected  # every acknowledged span survived (plus maybe unacknowledged ones)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "decode workers outlived the killed collector"
    # the clients re-send their acknowledged batches after the restart (a retry storm): none is counted twice
    proc, info = _start(db)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        for body in batches:
            call(body, timeout=10)
        channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows[0][0] == stored
        assert store.query("SELECT count(*) - count(DISTINCT (trace_id, span_id)) FROM spans").rows == [(0,)]


def test_sigterm_drains_commits_and_cli_reads_while_running(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    proc, info = _start(db)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        call(request(*pair()).SerializeToString(), timeout=10)
        channel.close()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "otel_shadow",
                "sql",
                "SELECT count(*) AS n FROM shadow_pairs",
                "--db",
                str(db),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [{"n": 1}]
        report = subprocess.run(
            [sys.executable, "-m", "otel_shadow", "report", "--db", str(db), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(report.stdout)["candidates"][0]["verdict"] == "INSUFFICIENT"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    assert not Path(f"{db}.collector.json").exists()
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(2,)]


def test_a_database_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    from ..store.test_bad_input import LOCK_HOLDER

    db = tmp_path / "held.duckdb"
    Store.open(db).close()
    with subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db)], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
            out = subprocess.run([*COLLECTOR, "--db", str(db)], capture_output=True, text=True, timeout=60)
        finally:
            holder.kill()  # leaving the with closes its pipe and waits
    assert out.returncode == 2
    assert "error: database" in out.stderr and "is held by process" in out.stderr and "Traceback" not in out.stderr
    assert not Path(f"{db}.collector.json").exists()


DRAIN = 4.0  # --drain-timeout of the tests below
SLACK = 6.0  # interpreter start-up and exit, a loaded machine


def _sigterm_exit_seconds(proc: subprocess.Popen[str]) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(DRAIN + SLACK)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"SIGTERM: still running {DRAIN + SLACK} s later (drain timeout {DRAIN} s)")
    return code, time.monotonic() - started


def test_sigterm_exits_within_the_drain_timeout_while_a_sql_query_runs(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    proc, info = _start(db, "--drain-timeout", str(DRAIN), "--sql-timeout", "600")
    answers: list[httpx.Response | Exception] = []

    def long_query() -> None:
        try:
            answers.append(
                httpx.post(
                    info["sql_url"],
                    json={"sql": "SELECT count(*) FROM range(10000000000) a, range(1000) b"},
                    headers={"Authorization": f"Bearer {info['sql_token']}"},
                    timeout=120,
                )
            )
        except httpx.HTTPError as exc:
            answers.append(exc)

    client = threading.Thread(target=long_query)
    client.start()
    time.sleep(1.5)  # the query is running
    assert not answers, answers
    code, _ = _sigterm_exit_seconds(proc)
    client.join(30)
    assert code == 0
    assert not Path(f"{db}.collector.json").exists()
    assert answers and (isinstance(answers[0], Exception) or answers[0].status_code != 200)


def test_sigterm_exits_within_the_drain_timeout_while_a_decode_worker_hangs(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    proc, info = _start(db, "--drain-timeout", str(DRAIN), "--decode-workers", "1")
    channel = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
    call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    call(request(*pair()).SerializeToString(), timeout=10)  # acknowledged: must survive
    (worker,) = _decode_workers(proc.pid)
    os.kill(worker, signal.SIGSTOP)  # a worker that never answers (swapping, stuck)
    outcome: list[Any] = []

    def stuck_request() -> None:
        try:
            outcome.append(call(request(*pair()).SerializeToString(), timeout=60))
        except grpc.RpcError as exc:
            outcome.append(exc.code())

    client = threading.Thread(target=stuck_request)
    client.start()

    def admitted() -> bool:  # the stuck request is in, waiting for the stopped worker
        metrics = httpx.get(f"http://127.0.0.1:{info['http_port']}/metrics", params={"format": "json"}, timeout=5)
        return bool(metrics.json()["inflight_bytes"] > 0)

    _wait_for(admitted, 30, "the request did not reach the collector")
    try:
        code, _ = _sigterm_exit_seconds(proc)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
    client.join(60)
    channel.close()
    assert code in (0, 1)  # 1: a step was abandoned at the deadline (logged)
    assert outcome and outcome[0] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)  # retryable, not acked
    assert not _alive(worker), "the stuck decode worker outlived the collector"
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(2,)]
