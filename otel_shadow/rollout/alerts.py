"""What raises an alert: a candidate's verdict changing, or its raw error rate or latency crossing a line.

The thresholds file of ``otel-shadow report`` (docs/report.md) takes one more section, ``alerts``,
read only by the watch (``otel-shadow watch``, ``otel-shadow collector --watch-thresholds``)::

    max_p95_ratio: 1.2
    alerts:
      error_rate: 0.05   # the candidate's error rate over its pairs; above it: an alert
      p95_ms: 2000       # the candidate's p95 latency in ms
      min_pairs: 20      # raw lines are read from this many pairs on
      hysteresis: 0.1    # back below only under line × (1 − 0.1): a value hovering at its line alerts once

``observe`` turns a report into the state of every (experiment, candidate, kind); ``changes``
compares it with the states remembered in the store and returns one ``Alert`` per change. Rules:

* A verdict change is an alert (``INSUFFICIENT → FAIL``, ``PASS → MARGINAL``…). A candidate seen for
  the first time alerts only when it is already FAIL: every new candidate starts INSUFFICIENT.
* A raw line crossed upwards is an alert (state ``above``), and so is the way back (``below``); the
  first sighting alerts only when above. With fewer than ``min_pairs`` pairs a raw value is not read:
  three pairs, one of them an error, are no 33% error rate.
* A canary config's unpaired verdict (the report's canary section, ``analysis.canary``) is watched
  the same way, under a kind of its own, ``canary_verdict``: the canary and the shadow candidate of
  one config id are two verdicts on two kinds of evidence, each remembered and alerted on its own.
* A state that did not change raises nothing, however often the check runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..analysis import CandidateReport, Report, Thresholds
from ..analysis.canary import CanaryReport
from ..errors import ConfigError
from ..safe_yaml import load_yaml, read_text_file

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "AlertThresholds",
    "Key",
    "Observed",
    "WatchConfig",
    "changes",
    "load_watch_config",
    "observe",
]

KIND_VERDICT = "verdict"
KIND_ERROR_RATE = "error_rate"
KIND_P95_MS = "p95_ms"
KIND_CANARY_VERDICT = "canary_verdict"  # the unpaired verdict of a canary config (report.canary)
ALERT_KINDS = (KIND_VERDICT, KIND_ERROR_RATE, KIND_P95_MS, KIND_CANARY_VERDICT)
ABOVE, BELOW = "above", "below"
_MAX_FILE_BYTES = 1 << 20

Key = tuple[str, str, str]  # (experiment, candidate config id, kind)


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """The ``alerts:`` section: raw lines on the candidate's own numbers (None: that line is off)."""

    error_rate: float | None = None  # fraction of the candidate's finished executions that failed, 0–1
    p95_ms: float | None = None  # the candidate's p95 latency, ms (pairs where both arms succeeded)
    min_pairs: int = 20  # raw lines are read from this many pairs on
    hysteresis: float = 0.1  # back below only under line × (1 − hysteresis)

    def line(self, kind: str) -> float | None:
        return self.error_rate if kind == KIND_ERROR_RATE else self.p95_ms if kind == KIND_P95_MS else None


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """Everything the watch reads from one thresholds file."""

    thresholds: Thresholds
    alerts: AlertThresholds
    source: str = "defaults"


@dataclass(frozen=True, slots=True)
class Observed:
    """The state of one kind for one candidate at one check."""

    state: str  # a verdict, or above / below
    value: float | None = None  # the raw number (error rate, p95 ms); None for verdicts
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """One change of state: what goes out as a log line, a metric point and a webhook POST."""

    experiment: str
    candidate_config_id: str
    kind: str
    previous_state: str | None  # None: first seen
    state: str
    value: float | None
    threshold: float | None
    message: str
    candidate: dict[str, Any]  # the report's JSON for this candidate (CandidateReport / CanaryReport .to_dict())

    @property
    def key(self) -> Key:
        return (self.experiment, self.candidate_config_id, self.kind)

    def payload(self, raised_at: str, alert_id: str) -> dict[str, Any]:
        """The webhook body: the alert, and the candidate's verdict as ``otel-shadow report --format json`` has it."""
        from ..analysis import SCHEMA

        return {
            "schema": "otel-shadow.alert/1",
            "report_schema": SCHEMA,
            "alert": {
                "alert_id": alert_id,  # the same on a re-delivery: receivers deduplicate on it
                "experiment": self.experiment,
                "candidate_config_id": self.candidate_config_id,
                "kind": self.kind,
                "previous_state": self.previous_state,
                "state": self.state,
                "value": self.value,
                "threshold": self.threshold,
                "message": self.message,
                "raised_at": raised_at,
            },
            "candidate": self.candidate,
        }


# --- the thresholds file ---------------------------------------------------------------------
def load_watch_config(path: str | None) -> WatchConfig:
    """The gates' thresholds and the ``alerts`` section of one YAML file; ``ConfigError`` naming file, key, value and fix."""
    if path is None:
        return WatchConfig(Thresholds(), AlertThresholds())
    root, data = load_yaml(read_text_file(path, _MAX_FILE_BYTES, "thresholds file"), path, "a thresholds file")
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"thresholds file '{path}' must hold a mapping of threshold: value (and an optional alerts: section)"
        )
    values = dict(data)
    section = values.pop("alerts", None)
    try:
        thresholds = Thresholds.from_mapping(values)
    except ConfigError as exc:
        raise ConfigError(f"thresholds file '{path}': {exc}") from None
    return WatchConfig(thresholds, _alert_thresholds(section, path, _child(root, "alerts")), path)


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v
    return None


def _where(path: str, node: yaml.Node | None, key: str) -> str:
    value = _child(node, key)
    mark = (value or node).start_mark if (value or node) is not None else None  # type: ignore[union-attr]
    return f"{path}:{mark.line + 1}" if mark is not None else path


_ALERT_KEYS = {
    "error_rate": "a fraction between 0 and 1 (e.g. 0.05 for 5%)",
    "p95_ms": "a latency in milliseconds above 0 (e.g. 2000)",
    "min_pairs": "a whole number of pairs, 1 or more (e.g. 20)",
    "hysteresis": "a fraction from 0 up to (not including) 1 (e.g. 0.1)",
}


def _alert_thresholds(section: Any, path: str, node: yaml.Node | None) -> AlertThresholds:
    if section is None:
        return AlertThresholds()
    if not isinstance(section, dict):
        raise ConfigError(
            f"{_where(path, node, '')}: alerts={section!r} must be a mapping, e.g. 'alerts: {{error_rate: 0.05, p95_ms: 2000}}'"
        )
    unknown = sorted(str(k) for k in section if k not in _ALERT_KEYS)
    if unknown:
        raise ConfigError(
            f"{_where(path, node, unknown[0])}: unknown key alerts.{unknown[0]}; the alerts section knows "
            f"{', '.join(_ALERT_KEYS)}"
        )
    for key, value in section.items():
        if value is None and key in ("error_rate", "p95_ms"):
            continue  # written out empty: that line is off
        if not _valid(key, value):
            raise ConfigError(f"{_where(path, node, key)}: alerts.{key}={value!r} must be {_ALERT_KEYS[key]}")
    return AlertThresholds(**section)


def _valid(key: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if key == "error_rate":
        return 0.0 <= value <= 1.0
    if key == "p95_ms":
        return value > 0
    if key == "min_pairs":
        return isinstance(value, int) and value >= 1
    return 0.0 <= value < 1.0  # hysteresis


# --- states and their changes ------------------------------------------------------------------
def _raw(candidate: CandidateReport, kind: str) -> float | None:
    name = "candidate_error_rate" if kind == KIND_ERROR_RATE else "candidate_p95_ms"
    value = candidate.metrics.get(name)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def observe(report: Report, alerts: AlertThresholds, previous: Mapping[Key, str]) -> dict[Key, Observed]:
    """The state of every (experiment, candidate, kind) in ``report``.

    ``previous`` (the remembered states) gives raw lines their hysteresis: once above, a value
    counts as below only under line × (1 − hysteresis).
    """
    out: dict[Key, Observed] = {}
    for c in report.candidates:
        out[(c.experiment, c.candidate_config_id, KIND_VERDICT)] = Observed(c.verdict)
        if c.metrics.get("pairs", 0) < alerts.min_pairs:
            continue
        for kind in (KIND_ERROR_RATE, KIND_P95_MS):
            line, value = alerts.line(kind), _raw(c, kind)
            if line is None or value is None:
                continue
            key = (c.experiment, c.candidate_config_id, kind)
            was_above = previous.get(key) == ABOVE
            above = value > line * (1 - alerts.hysteresis) if was_above else value > line
            out[key] = Observed(ABOVE if above else BELOW, value, line)
    for k in report.canary:
        out[(k.experiment, k.canary_config_id, KIND_CANARY_VERDICT)] = Observed(k.verdict)
    return out


def _describe(kind: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1%}" if kind == KIND_ERROR_RATE else f"{value:,.1f} ms"


def _message(c: CandidateReport | CanaryReport, kind: str, before: str | None, now: Observed) -> str:
    if isinstance(c, CanaryReport):
        change = f"verdict {before} -> {now.state}" if before else f"verdict {now.state}"
        why = f": {'; '.join(c.reasons[:3])}" if c.reasons else ""
        return f"experiment {c.experiment!r} canary {c.canary_config_id} (unpaired cohorts): {change}{why}"
    who = f"experiment {c.experiment!r} candidate {c.candidate_config_id}"
    if kind == KIND_VERDICT:
        change = f"verdict {before} -> {now.state}" if before else f"verdict {now.state}"
        why = f": {'; '.join(c.reasons[:3])}" if c.reasons else ""
        return f"{who}: {change}{why}"
    label = "error rate" if kind == KIND_ERROR_RATE else "p95 latency"
    where = "above" if now.state == ABOVE else "back below"
    return f"{who}: {label} {_describe(kind, now.value)} is {where} the alert line {_describe(kind, now.threshold)}"


def _alarming(kind: str, state: str) -> bool:
    return state == "FAIL" if kind in (KIND_VERDICT, KIND_CANARY_VERDICT) else state == ABOVE


def changes(report: Report, observed: Mapping[Key, Observed], previous: Mapping[Key, str]) -> list[Alert]:
    """One ``Alert`` per key whose state differs from the remembered one (see the module's rules)."""
    by_key = {(c.experiment, c.candidate_config_id): c for c in report.candidates}
    canaries = {(k.experiment, k.canary_config_id): k for k in report.canary}
    alerts = []
    for key, now in observed.items():
        before = previous.get(key)
        if before == now.state or (before is None and not _alarming(key[2], now.state)):
            continue
        candidate: CandidateReport | CanaryReport = (
            canaries[(key[0], key[1])] if key[2] == KIND_CANARY_VERDICT else by_key[(key[0], key[1])]
        )
        alerts.append(
            Alert(
                experiment=key[0],
                candidate_config_id=key[1],
                kind=key[2],
                previous_state=before,
                state=now.state,
                value=now.value,
                threshold=now.threshold,
                message=_message(candidate, key[2], before, now),
                candidate=candidate.to_dict(),
            )
        )
    return alerts
