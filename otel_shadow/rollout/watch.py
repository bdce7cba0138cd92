"""The alert watch: compute the verdict, compare every state with the one remembered, alert on changes.

One check (``AlertWatch.check``) reads the report through the store's read-only query path,
loads the states remembered in ``shadow_alert_state``, and for each change writes, in one
transaction, the new state and a row of ``shadow_alert_log`` (its webhook body, delivery
``pending``). Only then does the alert go out: a WARNING log line, a point on the OpenTelemetry
counter ``shadow.alerts``, and the webhook POST, whose outcome is written back to the log row.
So a change raises one alert however often the check runs and across restarts, and an alert
whose delivery a crash interrupted is still ``pending`` and sent at the next check.

Where the state is written: DuckDB lets one process write a file. Beside an embedded store
(``otel-shadow watch``), each check opens the file for writing and closes it again, as
``otel-shadow report`` does for reading. Inside the collector (``--watch-thresholds``), the
collector's process already holds the file, so the watch runs there on a thread and writes
through a cursor of its own on the collector's connection (its tables are its own; DuckDB runs
transactions of several cursors side by side). A ``watch`` process meeting a collector that holds
the file stops with an error that says to run the watch inside the collector.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
from opentelemetry import metrics

from .. import attributes as A
from ..access import collector_info_path
from ..analysis import Report, build_report
from ..errors import ConfigError, DatabaseLocked, StoreError
from ..pricing import PriceTable
from ..store import Store
from .alerts import Alert, Key, WatchConfig, changes, load_watch_config, observe
from .webhook import Webhook, read_secret

__all__ = [
    "AlertWatch",
    "HeldByCollector",
    "StoreSource",
    "collector_store",
    "file_store",
    "make_watch",
    "parse_interval",
    "run_loop",
]

logger = logging.getLogger("otel_shadow.rollout.alerts")

StoreSource = Callable[[], contextlib.AbstractContextManager[Store]]


class HeldByCollector(StoreError):
    """A collector holds the file: only it can record alert state, so the watch belongs inside it."""


def file_store(db: str, *, lock_wait_s: float = 5.0) -> StoreSource:
    """Open the file for each check and close it after (``otel-shadow watch`` beside an embedded store)."""

    @contextlib.contextmanager
    def source() -> Iterator[Store]:
        if db != ":memory:" and not Path(db).exists():
            raise StoreError(
                f"database '{db}' does not exist yet; run the application or a collector that writes it first"
            )
        try:
            store = Store.open(db, lock_wait_s=lock_wait_s)
        except DatabaseLocked as locked:
            if collector_info_path(db).exists():
                raise HeldByCollector(
                    f"a collector holds '{db}', and only the process that holds the file can record alert "
                    "state: run the watch inside it (otel-shadow collector --watch-thresholds FILE "
                    "[--webhook URL])"
                ) from locked
            raise
        with store:
            yield store

    return source


def collector_store(get: Callable[[], Store]) -> StoreSource:
    """The store a running collector holds (``get`` is its ``store`` property); never closed here."""

    @contextlib.contextmanager
    def source() -> Iterator[Store]:
        yield get()

    return source


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(text: str) -> float:
    """Seconds in ``30s``, ``5m``, ``1h``, ``500ms`` or a bare number of seconds; ``ConfigError`` otherwise."""
    raw = text.strip().lower()
    unit = next((u for u in ("ms", "s", "m", "h") if raw.endswith(u)), "")
    try:
        seconds = float(raw[: len(raw) - len(unit)] if unit else raw) * _UNITS.get(unit, 1.0)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < 7 * 86400:  # also refuses nan
        raise ConfigError(f"interval {text!r} must be a duration above 0 and below a week, such as 30s, 5m or 1h")
    return seconds


def make_watch(
    thresholds_file: str | None,
    webhook_url: str | None = None,
    secret_file: str | None = None,
    *,
    meter_provider: metrics.MeterProvider | None = None,
) -> AlertWatch:
    """An ``AlertWatch`` from the CLI's flags: every input checked before anything starts."""
    from ..pricing import load_prices

    config = load_watch_config(thresholds_file)
    webhook = Webhook(webhook_url, read_secret(secret_file)) if webhook_url else None
    if secret_file and webhook is None:
        raise ConfigError("--webhook-secret-file is set but --webhook is not; give the webhook's URL")
    return AlertWatch(config, webhook=webhook, meter_provider=meter_provider, prices=load_prices())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class AlertWatch:
    """Checks one store against one thresholds file; sends each change out three ways."""

    def __init__(
        self,
        config: WatchConfig,
        *,
        webhook: Webhook | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        from .._version import __version__

        self.config = config
        self.webhook = webhook
        self.prices = prices
        meter = (
            meter_provider.get_meter("otel_shadow", __version__)
            if meter_provider is not None
            else metrics.get_meter("otel_shadow", __version__)
        )
        self._counter = meter.create_counter(
            A.METRIC_ALERTS,
            unit="{alert}",
            description="Alerts raised by the otel-shadow watch (one per change of state)",
        )

    # --- one check -----------------------------------------------------------------------------
    def check(self, store: Store) -> list[Alert]:
        """Judge, record the changes, send them out; returns the alerts raised by this check."""
        report = self.report(store)
        previous = _load_states(store)
        observed = observe(report, self.config.alerts, previous)
        alerts = changes(report, observed, previous)
        now = _now()
        changed = {k: o for k, o in observed.items() if previous.get(k) != o.state}
        rows = _record(store, changed, alerts, now, webhook=self.webhook is not None)
        logger.debug(
            "alert check: %d candidate(s), %d state change(s), %d alert(s)",
            len(report.candidates),
            len(changed),
            len(alerts),
        )
        for alert in alerts:
            logger.warning("alert: %s", alert.message, extra={"fields": _fields(alert)})
            self._counter.add(
                1,
                {
                    A.SHADOW_EXPERIMENT: alert.experiment,
                    A.SHADOW_CONFIG_ID: alert.candidate_config_id,
                    A.METRIC_ATTR_ALERT_KIND: alert.kind,
                    A.METRIC_ATTR_ALERT_STATE: alert.state,
                },
            )
        if self.webhook is not None and (rows or _has_pending(store)):
            self.deliver_pending(store)
        return alerts

    def report(self, store: Store) -> Report:
        def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            result = store.query(sql)
            return result.columns, result.rows

        return build_report(query, self.config.thresholds, prices=self.prices)

    def deliver_pending(self, store: Store) -> None:
        """POST every ``pending`` alert, oldest first, and write down how each went."""
        assert self.webhook is not None
        pending = store.query(
            "SELECT alert_id, payload, message FROM shadow_alert_log WHERE webhook = 'pending' ORDER BY raised_at, alert_id"
        ).rows
        for alert_id, payload, message in pending:
            delivery = self.webhook.send(json.loads(payload))
            if delivery.delivered:
                logger.info("alert delivered to %s (%d attempt(s))", self.webhook.url, delivery.attempts)
            else:
                logger.error(
                    "alert not delivered to %s after %d attempt(s): %s (alert: %s)",
                    self.webhook.url,
                    delivery.attempts,
                    delivery.error,
                    message,
                )
            _write(
                store,
                [
                    (
                        "UPDATE shadow_alert_log SET webhook = ?, webhook_attempts = ?, webhook_error = ? WHERE alert_id = ?",
                        ["delivered" if delivery.delivered else "failed", delivery.attempts, delivery.error, alert_id],
                    )
                ],
            )

    # --- the loop ------------------------------------------------------------------------------
    def run(self, source: StoreSource, *, interval_s: float, stop: threading.Event, once: bool = False) -> list[Alert]:
        """Check every ``interval_s`` until ``stop`` is set (``once``: one check, its errors raised)."""
        if once:
            with source() as store:
                return self.check(store)

        def one() -> None:
            with source() as store:
                self.check(store)

        run_loop(one, interval_s, stop)
        return []


def run_loop(check: Callable[[], object], interval_s: float, stop: threading.Event) -> None:
    """``check`` now and then every ``interval_s`` until ``stop``; a failing check is logged, never fatal,
    except a store held by a collector, which no later check can get past."""
    while not stop.is_set():
        try:
            check()
        except HeldByCollector:
            raise
        except StoreError as exc:
            logger.error("alert check failed (next check in %.0f s): %s", interval_s, exc)
        except Exception:
            logger.exception("alert check failed (next check in %.0f s)", interval_s)
        stop.wait(interval_s)


# --- the store's side --------------------------------------------------------------------------
def _load_states(store: Store) -> dict[Key, str]:
    rows = store.query("SELECT experiment, candidate_config_id, kind, state FROM shadow_alert_state").rows
    return {(str(e), str(c), str(k)): str(s) for e, c, k, s in rows}


def _has_pending(store: Store) -> bool:
    return bool(store.query("SELECT count(*) FROM shadow_alert_log WHERE webhook = 'pending'").rows[0][0])


def _record(store: Store, changed: dict[Key, Any], alerts: list[Alert], now: dt.datetime, *, webhook: bool) -> int:
    """Write the changed states and the alert rows in one transaction; returns the rows written."""
    statements: list[tuple[str, list[Any]]] = [
        (
            "INSERT OR REPLACE INTO shadow_alert_state VALUES (?, ?, ?, ?, ?, ?)",
            [key[0], key[1], key[2], o.state, now, o.value],
        )
        for key, o in changed.items()
    ]
    stamp = now.isoformat()
    for alert in alerts:
        alert_id = uuid.uuid4()
        statements.append(
            (
                "INSERT INTO shadow_alert_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    alert_id,
                    now,
                    alert.experiment,
                    alert.candidate_config_id,
                    alert.kind,
                    alert.previous_state,
                    alert.state,
                    alert.value,
                    alert.threshold,
                    alert.message,
                    json.dumps(alert.payload(stamp, alert_id.hex), default=str),
                    "pending" if webhook else "none",
                ],
            )
        )
    if statements:
        _write(store, statements)
    return len(alerts)


def _write(store: Store, statements: list[tuple[str, list[Any]]]) -> None:
    """One transaction on a cursor of its own (beside the collector's writer, on its connection)."""
    cursor = store.con.cursor()
    try:
        cursor.execute("BEGIN TRANSACTION")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("COMMIT")
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise StoreError(f"cannot record alert state: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        cursor.close()


def _fields(alert: Alert) -> dict[str, Any]:
    return {
        "experiment": alert.experiment,
        "candidate_config_id": alert.candidate_config_id,
        "kind": alert.kind,
        "previous_state": alert.previous_state,
        "state": alert.state,
        "value": alert.value,
        "threshold": alert.threshold,
    }
