"""The watch from the command line: ``otel-shadow watch`` beside a file, and inside a running collector
(``--watch-thresholds``), which sends OTLP spans over HTTP and a webhook to a loopback receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.cli import main
from otel_shadow.store import Store

from ..analysis.helpers import arm_spans, lognormal_pairs
from ..store.otlp import request, span
from .test_alerts import SECRET, Receiver, failing_pairs, free_port, good_pairs


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_watch_once_prints_an_alert_once_and_then_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "shadow.duckdb")
    failing_pairs(Path(db), 200)
    code, out, _ = run_cli(capsys, "watch", "--db", db, "--once")
    assert code == 0 and out.startswith("ALERT verdict FAIL: experiment 'exp' candidate C: verdict FAIL")
    code, out, _ = run_cli(capsys, "watch", "--db", db, "--once")
    assert (code, out) == (0, "")


def test_watch_with_a_bad_thresholds_file_exits_2_with_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "shadow.duckdb"
    good_pairs(db, 10)
    gates = tmp_path / "gates.yaml"
    gates.write_text("alerts:\n  error_rate: 5\n")
    code, _, err = run_cli(capsys, "watch", "--db", str(db), "--thresholds", str(gates), "--once")
    assert code == 2
    assert err == f"error: {gates}:2: alerts.error_rate=5 must be a fraction between 0 and 1 (e.g. 0.05 for 5%)\n"
    code, _, err = run_cli(capsys, "watch", "--db", str(db), "--webhook", "file:///etc/passwd", "--once")
    assert code == 2 and "only http:// and https://" in err


def test_report_reads_a_thresholds_file_that_has_an_alerts_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "shadow.duckdb"
    good_pairs(db, 10)
    gates = tmp_path / "gates.yaml"
    gates.write_text("min_pairs: 5\nalerts: {error_rate: 0.05}\n")
    code, out, _ = run_cli(capsys, "report", "--db", str(db), "--thresholds", str(gates), "--format", "json")
    assert code == 0 and json.loads(out)["thresholds"]["min_pairs"] == 5


# --- inside the collector ---------------------------------------------------------------------------
def pair_spans(n: int, seed: int) -> list[Any]:
    """Primary and candidate spans of ``n`` requests; the candidate fails every other one."""
    primary_ms, candidate_ms = lognormal_pairs(n, seed)
    spans = []
    for i in range(n):
        trace_id = os.urandom(16)
        attrs = {
            "shadow.experiment": "exp",
            "shadow.role": "primary",
            "shadow.config.id": "P",
            "shadow.outcome": "ok",
            "shadow.output.hash": "same",
            "shadow.candidates.scheduled": 1,
            "shadow.candidates.dropped": 0,
        }
        primary = span("exp", attrs, trace_id=trace_id, duration_ms=float(primary_ms[i]))
        outcome = "error" if i % 2 == 0 else "ok"
        spans += [
            primary,
            arm_spans(trace_id, primary.span_id, "candidate", "C", float(candidate_ms[i]), outcome, "same", "exp"),
        ]
    return spans


class CollectorProcess:
    def __init__(self, db: Path, gates: Path, webhook: str, secret_file: Path) -> None:
        self.http_port = free_port()
        self.stderr = db.parent / f"collector-{time.monotonic_ns()}.log"
        args = [
            sys.executable, "-m", "otel_shadow", "collector", "--db", str(db), "--grpc-port", str(free_port()),
            "--http-port", str(self.http_port), "--decode-workers", "0", "--log-level", "DEBUG",
            "--watch-thresholds", str(gates), "--watch-interval", "200ms", "--webhook", webhook,
            "--webhook-secret-file", str(secret_file),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        err = os.open(self.stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:  # the child writes its log there; this process keeps no handle open
            self.process = subprocess.Popen(args, stderr=err, stdout=subprocess.DEVNULL, env=env)
        finally:
            os.close(err)
        self.info = Path(f"{db}.collector.json")
        wait_for(lambda: self.info.exists() or self.process.poll() is not None, "the collector to start")
        assert self.process.poll() is None, self.log()

    def send(self, spans: list[Any]) -> None:
        body = request(*spans).SerializeToString()
        post = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/v1/traces", data=body, method="POST")
        post.add_header("Content-Type", "application/x-protobuf")
        with urllib.request.urlopen(post, timeout=30) as response:
            assert response.status == 200

    def checks(self) -> int:
        return self.log().count("alert check:")

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        assert self.process.returncode == 0, self.log()


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_collector_runs_the_watch_on_its_own_database_and_alerts_once_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "collector.duckdb"
    gates = tmp_path / "gates.yaml"
    gates.write_text("alerts: {error_rate: 0.2}\n")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    receiver = Receiver()
    try:
        collector = CollectorProcess(db, gates, receiver.url, secret_file)
        try:
            collector.send(pair_spans(200, seed=1))
            wait_for(lambda: len(receiver.posts) >= 2, "two alerts (verdict FAIL, error rate above)")
            seen = collector.checks()
            wait_for(lambda: collector.checks() >= seen + 3, "three more checks")
        finally:
            collector.stop()
        assert len(receiver.posts) == 2
        assert {(b["alert"]["kind"], b["alert"]["state"]) for _, b in receiver.posts} == {
            ("verdict", "FAIL"),
            ("error_rate", "above"),
        }
        assert all(h["X-Otel-Shadow-Secret"] == SECRET for h, _ in receiver.posts)
        assert SECRET not in collector.log()

        again = CollectorProcess(db, gates, receiver.url, secret_file)  # a restart: the state is in its database
        try:
            wait_for(lambda: again.checks() >= 3, "three checks after the restart")
        finally:
            again.stop()
        assert len(receiver.posts) == 2
    finally:
        receiver.close()
    with Store.open(db, read_only=True) as store:
        log = store.query("SELECT kind, state, webhook FROM shadow_alert_log ORDER BY kind").rows
        state = store.query("SELECT kind, state FROM shadow_alert_state ORDER BY kind").rows
    assert log == [("error_rate", "above", "delivered"), ("verdict", "FAIL", "delivered")]
    assert state == [("error_rate", "above"), ("verdict", "FAIL")]


def test_watch_beside_a_file_a_collector_holds_says_to_run_it_inside_the_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "collector.duckdb"
    gates = tmp_path / "gates.yaml"
    gates.write_text("")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    receiver = Receiver()
    collector = CollectorProcess(db, gates, receiver.url, secret_file)
    try:
        code, _, err = run_cli(capsys, "watch", "--db", str(db), "--once")
    finally:
        collector.stop()
        receiver.close()
    assert code == 2 and "otel-shadow collector --watch-thresholds FILE" in err


def test_the_collector_refuses_a_webhook_without_watch_thresholds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(
        capsys, "collector", "--db", str(tmp_path / "c.duckdb"), "--webhook", "https://example.com/hook"
    )
    assert code == 2 and "--webhook needs --watch-thresholds" in err


def test_the_collector_refuses_watch_thresholds_with_segments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With --segments the DuckDB file keeps only rows not yet in a segment: a verdict on it would be partial."""
    gates = tmp_path / "gates.yaml"
    gates.write_text("")
    args = [
        "collector",
        "--db",
        str(tmp_path / "c.duckdb"),
        "--watch-thresholds",
        str(gates),
        "--segments",
        str(tmp_path / "seg"),
    ]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "--watch-thresholds cannot be combined with --segments" in err
