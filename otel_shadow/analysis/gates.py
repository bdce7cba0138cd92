"""The go/no-go gates, one function each, registered in ``GATES``.

Defaults follow the shadow-mode guidance the project started from: candidate p95 latency below
1.2× production, candidate error rate no higher than production, and enough pairs to judge.
A gate that misses its threshold by less than its margin is MARGINAL (look closer) rather than
FAIL. Statistical gates (confidence intervals, noise floors) register here the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GATES", "Gate", "GateResult", "Thresholds", "VERDICTS"]

VERDICTS = ("PASS", "MARGINAL", "FAIL", "INSUFFICIENT")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of the gates; each can be set from the CLI or a YAML file."""

    max_p95_ratio: float = 1.2  # candidate p95 / primary p95 must stay below this
    p95_margin: float = 0.1  # up to max_p95_ratio × (1 + margin) is MARGINAL
    max_error_rate_increase: float = 0.0  # candidate error rate − primary error rate
    error_rate_margin: float = 0.01  # up to this much more is MARGINAL
    min_pairs: int = 100  # fewer compared pairs: INSUFFICIENT
    min_exact_match_rate: float | None = None  # optional: outputs must agree this often
    min_coverage: float | None = None  # optional: share of calls whose candidates ran

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Thresholds:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            from ..errors import ConfigError

            raise ConfigError(
                f"unknown threshold(s) {sorted(unknown)}; known thresholds are {sorted(known)}"
            )
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's finding for one candidate config."""

    name: str
    status: str  # PASS, MARGINAL, FAIL, INSUFFICIENT, or SKIP (no data for this gate)
    reason: str
    value: float | None = None
    threshold: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


Gate = Callable[[Mapping[str, Any], Thresholds], GateResult]


def _num(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value is None else float(value)


def pairs_gate(row: Mapping[str, Any], t: Thresholds) -> GateResult:
    pairs = int(row.get("pairs") or 0)
    if pairs < t.min_pairs:
        return GateResult("pairs", "INSUFFICIENT", f"{pairs} pairs compared, {t.min_pairs} needed", pairs, t.min_pairs)
    return GateResult("pairs", "PASS", f"{pairs} pairs compared (≥ {t.min_pairs})", pairs, t.min_pairs)


def latency_gate(row: Mapping[str, Any], t: Thresholds) -> GateResult:
    primary, candidate = _num(row, "primary_p95_ms"), _num(row, "candidate_p95_ms")
    if not primary or candidate is None:
        return GateResult("latency_p95", "SKIP", "no successful executions on one side to compare latency")
    ratio = candidate / primary
    text = f"p95 latency {candidate:.1f} ms vs {primary:.1f} ms ({ratio:.2f}×, limit {t.max_p95_ratio:.2f}×)"
    if ratio < t.max_p95_ratio:
        status = "PASS"
    elif ratio < t.max_p95_ratio * (1 + t.p95_margin):
        status = "MARGINAL"
    else:
        status = "FAIL"
    return GateResult("latency_p95", status, text, ratio, t.max_p95_ratio)


def error_rate_gate(row: Mapping[str, Any], t: Thresholds) -> GateResult:
    primary, candidate = _num(row, "primary_error_rate"), _num(row, "candidate_error_rate")
    if primary is None or candidate is None:
        return GateResult("error_rate", "SKIP", "no executions to compare error rates")
    increase = candidate - primary
    text = f"error rate {candidate:.2%} vs {primary:.2%} ({increase:+.2%}, limit {t.max_error_rate_increase:+.2%})"
    if increase <= t.max_error_rate_increase:
        status = "PASS"
    elif increase <= t.max_error_rate_increase + t.error_rate_margin:
        status = "MARGINAL"
    else:
        status = "FAIL"
    return GateResult("error_rate", status, text, increase, t.max_error_rate_increase)


def exact_match_gate(row: Mapping[str, Any], t: Thresholds) -> GateResult:
    rate = _num(row, "exact_match_rate")
    if t.min_exact_match_rate is None:
        shown = "n/a" if rate is None else f"{rate:.1%}"
        return GateResult("exact_match", "SKIP", f"exact-match rate {shown} (no threshold set)", rate)
    if rate is None:
        return GateResult("exact_match", "SKIP", "no pair where both sides succeeded")
    status = "PASS" if rate >= t.min_exact_match_rate else "FAIL"
    return GateResult(
        "exact_match", status, f"exact-match rate {rate:.1%} (minimum {t.min_exact_match_rate:.1%})", rate, t.min_exact_match_rate
    )


def coverage_gate(row: Mapping[str, Any], t: Thresholds) -> GateResult:
    coverage = _num(row, "coverage")
    scheduled, dropped = row.get("scheduled") or 0, row.get("dropped") or 0
    text = f"candidates ran for {scheduled} calls, {dropped} dropped (sampling, queue, budget)"
    if t.min_coverage is None or coverage is None:
        return GateResult("coverage", "SKIP", text, coverage)
    status = "PASS" if coverage >= t.min_coverage else "FAIL"
    return GateResult("coverage", status, f"{text}: coverage {coverage:.1%} (minimum {t.min_coverage:.1%})", coverage, t.min_coverage)


GATES: dict[str, Gate] = {
    "pairs": pairs_gate,
    "latency_p95": latency_gate,
    "error_rate": error_rate_gate,
    "exact_match": exact_match_gate,
    "coverage": coverage_gate,
}
