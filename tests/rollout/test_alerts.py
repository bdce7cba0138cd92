"""Alerts: a real store filled through the real writer, a real HTTP receiver on loopback, the real
OpenTelemetry metrics SDK. One alert per change of state, never a storm, also across restarts."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_shadow.analysis import build_report
from otel_shadow.errors import ConfigError
from otel_shadow.rollout.alerts import load_watch_config
from otel_shadow.rollout.watch import AlertWatch, file_store, make_watch, parse_interval
from otel_shadow.rollout.webhook import SECRET_HEADER, Webhook, validate_url
from otel_shadow.store import Store

from ..analysis.helpers import lognormal_pairs, write_pairs

SECRET = "s3cret-value-never-logged"


class Receiver:
    """An HTTP server on loopback that records every POST and answers with the next scripted status."""

    def __init__(self, statuses: list[int] | None = None, location: str = "") -> None:
        self.posts: list[tuple[dict[str, str], Any]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.posts.append((dict(self.headers.items()), json.loads(body)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def thresholds(tmp_path: Path, text: str = "") -> str:
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    return str(path)


def good_pairs(db: Path, n: int, seed: int = 1) -> None:
    primary, candidate = lognormal_pairs(n, seed)
    write_pairs(db, primary, candidate)


def failing_pairs(db: Path, n: int, seed: int = 2) -> None:
    """Pairs where the candidate fails every other request (the primary never does)."""
    primary, candidate = lognormal_pairs(n, seed)
    write_pairs(db, primary, candidate, candidate_error=np.arange(n) % 2 == 0)


def check(db: Path, watch: AlertWatch) -> list[Any]:
    with Store.open(db) as store:
        return watch.check(store)


def alert_log(db: Path) -> list[tuple[Any, ...]]:
    with Store.open(db, read_only=True) as store:
        return store.query(
            "SELECT kind, previous_state, state, webhook, webhook_attempts, webhook_error FROM shadow_alert_log ORDER BY raised_at"
        ).rows


@pytest.fixture
def turned_bad(tmp_path: Path) -> Path:
    """A store whose candidate was seen INSUFFICIENT (50 good pairs), then got 200 pairs half failed."""
    db = tmp_path / "shadow.duckdb"
    good_pairs(db, 50)
    assert check(db, AlertWatch(load_watch_config(None))) == []  # first seen INSUFFICIENT: remembered, no alert
    failing_pairs(db, 200)
    return db


def test_a_verdict_change_posts_exactly_one_webhook_with_the_candidates_json_and_the_secret(
    turned_bad: Path, receiver: Receiver
) -> None:
    watch = AlertWatch(load_watch_config(None), webhook=Webhook(receiver.url, SECRET))
    alerts = check(turned_bad, watch)
    assert [(a.kind, a.previous_state, a.state) for a in alerts] == [("verdict", "INSUFFICIENT", "FAIL")]
    assert len(receiver.posts) == 1
    headers, body = receiver.posts[0]
    assert headers[SECRET_HEADER] == SECRET
    assert headers["Content-Type"] == "application/json"
    assert body["schema"] == "otel-shadow.alert/1"
    assert body["alert"]["state"] == "FAIL" and body["alert"]["previous_state"] == "INSUFFICIENT"
    with Store.open(turned_bad, read_only=True) as store:
        report = build_report(lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql)))
    expected = report.candidates[0].to_dict()
    assert body["candidate"]["candidate_config_id"] == "C" and body["candidate"]["verdict"] == "FAIL"
    assert body["candidate"]["reasons"] == expected["reasons"]
    assert body["candidate"]["metrics"]["pairs"] == expected["metrics"]["pairs"] == 250
    assert alert_log(turned_bad) == [("verdict", "INSUFFICIENT", "FAIL", "delivered", 1, None)]


def test_repeated_checks_raise_no_new_alert(turned_bad: Path, receiver: Receiver) -> None:
    watch = AlertWatch(load_watch_config(None), webhook=Webhook(receiver.url, SECRET))
    assert len(check(turned_bad, watch)) == 1
    for _ in range(3):
        assert check(turned_bad, watch) == []
    assert len(receiver.posts) == 1
    assert len(alert_log(turned_bad)) == 1


def test_a_restarted_watch_does_not_alert_again(turned_bad: Path, receiver: Receiver) -> None:
    """The state lives in the store: a new process (a new watch, the file opened again) knows it."""
    source = file_store(str(turned_bad))
    first = make_watch(None, receiver.url)
    assert len(first.run(source, interval_s=1, stop=threading.Event(), once=True)) == 1
    again = make_watch(None, receiver.url)
    assert again.run(source, interval_s=1, stop=threading.Event(), once=True) == []
    assert len(receiver.posts) == 1


def test_receiver_down_retries_then_logs_a_failure_and_never_raises(
    turned_bad: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Webhook(f"http://127.0.0.1:{free_port()}/hook", SECRET, attempts=3, backoff_s=0.01, timeout_s=2)
    with caplog.at_level(logging.INFO, logger="otel_shadow"):
        alerts = check(turned_bad, AlertWatch(load_watch_config(None), webhook=hook))
    assert [a.state for a in alerts] == ["FAIL"]  # the alert itself was raised
    kind, _, state, webhook, attempts, error = alert_log(turned_bad)[0]
    assert (kind, state, webhook, attempts) == ("verdict", "FAIL", "failed", 3)
    assert "cannot reach the receiver" in error
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "not delivered" in r.getMessage()]
    assert len(failures) == 1 and "after 3 attempt(s)" in failures[0].getMessage()
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "verdict INSUFFICIENT -> FAIL" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert SECRET not in caplog.text


def test_a_receiver_answering_503_gets_every_attempt_then_the_delivery_is_failed(turned_bad: Path) -> None:
    receiver = Receiver(statuses=[503, 503, 503])
    try:
        hook = Webhook(receiver.url, SECRET, attempts=3, backoff_s=0.01)
        check(turned_bad, AlertWatch(load_watch_config(None), webhook=hook))
    finally:
        receiver.close()
    assert len(receiver.posts) == 3
    assert alert_log(turned_bad)[0][3:5] == ("failed", 3)
    # a later check neither re-raises the alert nor re-sends a failed delivery (no storm when the receiver is back)
    assert check(turned_bad, AlertWatch(load_watch_config(None), webhook=hook)) == []


def test_a_recovering_receiver_gets_the_alert_on_a_retry(turned_bad: Path) -> None:
    receiver = Receiver(statuses=[500])
    try:
        check(turned_bad, AlertWatch(load_watch_config(None), webhook=Webhook(receiver.url, SECRET, backoff_s=0.01)))
    finally:
        receiver.close()
    assert len(receiver.posts) == 2 and receiver.posts[0][1] == receiver.posts[1][1]
    assert alert_log(turned_bad)[0][3:5] == ("delivered", 2)


def test_a_receiver_that_does_not_speak_http_is_a_failed_delivery_not_a_crash() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer_garbage() -> None:
            for _ in range(2):
                conn, _ = server.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"garbage\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        delivery = Webhook(f"http://127.0.0.1:{port}/hook", SECRET, attempts=2, backoff_s=0.01).send({"a": 1})
        thread.join(10)
    assert not delivery.delivered and delivery.attempts == 2
    assert delivery.error is not None and SECRET not in delivery.error


def test_a_redirect_is_not_followed_so_the_secret_stays_with_the_receiver(turned_bad: Path) -> None:
    elsewhere = Receiver()
    receiver = Receiver(statuses=[307], location=elsewhere.url)
    try:
        check(turned_bad, AlertWatch(load_watch_config(None), webhook=Webhook(receiver.url, SECRET, backoff_s=0.01)))
    finally:
        receiver.close()
        elsewhere.close()
    assert len(receiver.posts) == 1 and elsewhere.posts == []
    assert alert_log(turned_bad)[0][3] == "failed"


def test_an_alert_a_crash_left_pending_is_delivered_at_the_next_check(turned_bad: Path, receiver: Receiver) -> None:
    watch = AlertWatch(load_watch_config(None), webhook=Webhook(receiver.url, SECRET))
    with Store.open(turned_bad) as store:
        watch.deliver_pending = lambda store: None  # type: ignore[method-assign]  # the process dies before delivering
        assert len(watch.check(store)) == 1
    assert alert_log(turned_bad)[0][3] == "pending" and receiver.posts == []
    assert check(turned_bad, AlertWatch(load_watch_config(None), webhook=Webhook(receiver.url, SECRET))) == []
    assert len(receiver.posts) == 1 and receiver.posts[0][1]["alert"]["state"] == "FAIL"
    assert alert_log(turned_bad)[0][3] == "delivered"
    with Store.open(turned_bad, read_only=True) as store:
        (alert_id,) = store.query("SELECT alert_id FROM shadow_alert_log").rows[0]
    assert receiver.posts[0][1]["alert"]["alert_id"] == alert_id.hex  # a receiver deduplicates on it


def test_crossing_the_error_rate_line_alerts_once_and_going_back_below_alerts_once(tmp_path: Path) -> None:
    db = tmp_path / "shadow.duckdb"
    config = load_watch_config(thresholds(tmp_path, "alerts:\n  error_rate: 0.2\n  min_pairs: 20\n"))
    failing_pairs(db, 40)  # 50% errors
    first = check(db, AlertWatch(config))
    raw = [a for a in first if a.kind == "error_rate"]
    assert [(a.previous_state, a.state, a.value, a.threshold) for a in raw] == [(None, "above", 0.5, 0.2)]
    assert check(db, AlertWatch(config)) == []
    good_pairs(db, 400)  # 20 / 440 = 4.5%
    back = [a for a in check(db, AlertWatch(config)) if a.kind == "error_rate"]
    assert [(a.previous_state, a.state) for a in back] == [("above", "below")]
    assert "back below the alert line 20.0%" in back[0].message


def test_a_p95_line_alerts_when_the_candidate_is_slower_than_it(tmp_path: Path) -> None:
    db = tmp_path / "shadow.duckdb"
    primary, candidate = lognormal_pairs(60, seed=3, slowdown=4.0)
    write_pairs(db, primary, candidate)
    config = load_watch_config(thresholds(tmp_path, "alerts: {p95_ms: 2000}\n"))
    alerts = [a for a in check(db, AlertWatch(config)) if a.kind == "p95_ms"]
    assert len(alerts) == 1 and alerts[0].state == "above" and alerts[0].value > 2000


def test_raw_lines_wait_for_min_pairs(tmp_path: Path) -> None:
    db = tmp_path / "shadow.duckdb"
    failing_pairs(db, 10)
    config = load_watch_config(thresholds(tmp_path, "alerts: {error_rate: 0.2, min_pairs: 20}\n"))
    assert [a for a in check(db, AlertWatch(config)) if a.kind == "error_rate"] == []


def test_the_alert_counter_is_seen_by_an_in_memory_metric_reader(turned_bad: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        check(turned_bad, AlertWatch(load_watch_config(None), meter_provider=provider))
        check(turned_bad, AlertWatch(load_watch_config(None), meter_provider=provider))  # no change: no point added
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    assert data is not None
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "shadow.alerts"
        for p in m.data.data_points
    ]
    assert [(dict(p.attributes or {}), p.value) for p in points] == [  # type: ignore[union-attr]
        (
            {
                "shadow.experiment": "exp",
                "shadow.config.id": "C",
                "shadow.alert.kind": "verdict",
                "shadow.alert.state": "FAIL",
            },
            1,
        )
    ]


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alerts:\n  error_rate: 5\n", "gates.yaml:2: alerts.error_rate=5 must be a fraction between 0 and 1"),
        ("alerts:\n  p95_ms: -1\n", "gates.yaml:2: alerts.p95_ms=-1 must be a latency in milliseconds above 0"),
        ("alerts:\n  p95_ms: fast\n", "alerts.p95_ms='fast' must be a latency in milliseconds"),
        ("alerts:\n  min_pairs: 2.5\n", "alerts.min_pairs=2.5 must be a whole number of pairs"),
        (
            "alerts:\n  p99_ms: 100\n",
            "gates.yaml:2: unknown key alerts.p99_ms; the alerts section knows error_rate, p95_ms",
        ),
        ("alerts: loud\n", "alerts='loud' must be a mapping, e.g. 'alerts: {error_rate: 0.05, p95_ms: 2000}'"),
        ("max_p95_ratio: 1.2\nmax_p95: 2\n", "gates.yaml': unknown threshold(s) ['max_p95']"),
        ("- a list\n", "must hold a mapping of threshold: value"),
    ],
)
def test_a_bad_thresholds_file_is_refused_naming_file_key_value_and_fix(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_watch_config(thresholds(tmp_path, text))
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///etc/passwd", "only http:// and https://"),
        ("ftp://example.com/hook", "only http:// and https://"),
        ("http://user:pw@example.com/hook", "put the credential in OTEL_SHADOW_WEBHOOK_SECRET"),
        ("http:///hook", "names no host"),
        ("https://example.com:notaport/", "is malformed"),
        ("http://example.com/a b", "spaces or control characters"),
    ],
)
def test_webhook_urls_that_are_not_plain_http_or_https_are_refused(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_url(url)
    assert expected in str(error.value)
    assert "pw" not in str(error.value)


def test_the_webhook_secret_comes_from_a_file_or_the_environment_and_never_shows_in_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_shadow.rollout.webhook import read_secret

    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{SECRET}\n")
    assert read_secret(str(secret_file)) == SECRET
    monkeypatch.setenv("OTEL_SHADOW_WEBHOOK_SECRET", "from-env")
    assert read_secret(None) == "from-env"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret(str(tmp_path / "empty"))
    assert SECRET not in repr(Webhook("https://example.com/hook", SECRET))


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60.0), ("5m", 300.0), ("1h", 3600.0), ("500ms", 0.5), ("90", 90.0)]
)
def test_intervals_read_seconds_minutes_and_hours(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["0s", "-5m", "soon", "nan", "8d"])
def test_an_unreadable_interval_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="must be a duration above 0"):
        parse_interval(text)


def test_a_secret_sent_over_plain_http_to_another_host_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_shadow"):
        Webhook("http://127.0.0.1:9/hook", SECRET)
        Webhook("https://alerts.example.com/hook", SECRET)
        assert caplog.records == []
        Webhook("http://alerts.example.com/hook", SECRET)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "unencrypted" in caplog.text and SECRET not in caplog.text


def _canary_turns_bad(db: Path) -> None:
    """Good shadow pairs and a canary of the same config id C, the canary's users then get errors."""
    from .ramp_data import write_cohorts
    from .ramp_data import write_pairs as write_timed_pairs

    at = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    with Store.open(db) as store:
        write_timed_pairs(store, "chat", 400, at, seed=1)
        write_cohorts(store, "chat", canary=50, primary=50, at=at + dt.timedelta(minutes=10), seed=2)


def _canary_fails(db: Path) -> None:
    from .ramp_data import write_cohorts

    at = dt.datetime(2030, 1, 1, 1, tzinfo=dt.timezone.utc)
    with Store.open(db) as store:
        write_cohorts(store, "chat", canary=1000, primary=1000, at=at, seed=3, canary_error_rate=0.3)


def test_a_canary_turning_fail_posts_exactly_one_webhook_logs_and_counts_once(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "shadow.duckdb"
    _canary_turns_bad(db)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        watch = AlertWatch(load_watch_config(None), webhook=Webhook(receiver.url, SECRET), meter_provider=provider)
        assert check(db, watch) == []  # shadow PASS and canary INSUFFICIENT, first seen: remembered, no alert
        _canary_fails(db)
        with caplog.at_level(logging.WARNING, logger="otel_shadow"):
            alerts = check(db, watch)
            for _ in range(2):
                assert check(db, watch) == []  # the same state: nothing more
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    assert [(a.kind, a.candidate_config_id, a.previous_state, a.state) for a in alerts] == [
        ("canary_verdict", "C", "INSUFFICIENT", "FAIL")
    ]
    assert len(receiver.posts) == 1
    headers, body = receiver.posts[0]
    assert headers[SECRET_HEADER] == SECRET
    assert body["alert"]["kind"] == "canary_verdict" and body["alert"]["state"] == "FAIL"
    assert body["candidate"]["statistics"] == "unpaired" and body["candidate"]["canary_config_id"] == "C"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "alert:" in r.getMessage()]
    assert len(warnings) == 1 and "canary C (unpaired cohorts): verdict INSUFFICIENT -> FAIL" in warnings[0]
    assert data is not None
    points = [
        (dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "shadow.alerts"
        for p in m.data.data_points
    ]
    assert points == [
        (
            {
                "shadow.experiment": "chat",
                "shadow.config.id": "C",
                "shadow.alert.kind": "canary_verdict",
                "shadow.alert.state": "FAIL",
            },
            1,
        )
    ]
    # the paired candidate of the same config id keeps its own row: two keys, no collision
    with Store.open(db, read_only=True) as store:
        states = store.query(
            "SELECT kind, state FROM shadow_alert_state WHERE experiment = 'chat' AND candidate_config_id = 'C' ORDER BY kind"
        ).rows
    assert [tuple(r) for r in states] == [("canary_verdict", "FAIL"), ("verdict", "PASS")]
