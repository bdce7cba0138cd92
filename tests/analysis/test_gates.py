"""The gates and the verdict: each threshold moves the verdict the way the docs say."""

from __future__ import annotations

from typing import Any

import pytest

from otel_shadow.analysis import Thresholds, build_report
from otel_shadow.errors import ConfigError

COLUMNS = [
    "experiment", "candidate_config_id", "primary_config_id", "pairs", "scheduled", "dropped", "coverage",
    "exact_match_rate", "primary_error_rate", "candidate_error_rate", "primary_p95_ms", "candidate_p95_ms",
]


def row(**overrides: Any) -> tuple[Any, ...]:
    base = dict(
        experiment="e", candidate_config_id="c", primary_config_id="p", pairs=500, scheduled=500, dropped=0,
        coverage=1.0, exact_match_rate=0.9, primary_error_rate=0.02, candidate_error_rate=0.02,
        primary_p95_ms=100.0, candidate_p95_ms=110.0,
    )
    base.update(overrides)
    return tuple(base[c] for c in COLUMNS)


def verdict(thresholds: Thresholds | None = None, **overrides: Any) -> tuple[str, list[str]]:
    report = build_report(lambda sql: (COLUMNS, [row(**overrides)]), thresholds)
    (candidate,) = report.candidates
    return candidate.verdict, candidate.reasons


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, "PASS"),
        ({"candidate_p95_ms": 125.0}, "MARGINAL"),  # 1.25× : within 10% above the 1.2× limit
        ({"candidate_p95_ms": 140.0}, "FAIL"),
        ({"candidate_error_rate": 0.025}, "MARGINAL"),  # +0.5 pp
        ({"candidate_error_rate": 0.05}, "FAIL"),
        ({"pairs": 99}, "INSUFFICIENT"),
        ({"pairs": 99, "candidate_error_rate": 0.5}, "INSUFFICIENT"),
    ],
)
def test_verdicts(overrides: dict[str, Any], expected: str) -> None:
    assert verdict(**overrides)[0] == expected


def test_reasons_name_the_failing_metric() -> None:
    state, reasons = verdict(candidate_p95_ms=150.0)
    assert state == "FAIL" and reasons == ["p95 latency 150.0 ms vs 100.0 ms (1.50×, limit 1.20×)"]


def test_thresholds_are_configurable_and_unknown_ones_refused() -> None:
    assert verdict(Thresholds(max_p95_ratio=2.0), candidate_p95_ms=150.0)[0] == "PASS"
    assert verdict(Thresholds(min_exact_match_rate=0.95))[0] == "FAIL"
    assert verdict(Thresholds(min_pairs=1000))[0] == "INSUFFICIENT"
    with pytest.raises(ConfigError, match="unknown threshold"):
        Thresholds.from_mapping({"max_p59_ratio": 1.0})
