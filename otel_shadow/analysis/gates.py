"""The go/no-go gates: what each one measures, its limit, and the evidence behind it.

A gate turns one candidate's paired data into an ``Evidence``: an estimate, its standard error on a
scale where it is close to normal (a difference of rates, the log of a quantile ratio), how many
observations it rests on, and two lines: ``limit`` (beyond it, the candidate is worse than the
criterion: an interval entirely beyond it is a FAIL) and ``pass_limit`` (an interval entirely within
it is a PASS; equal to ``limit`` unless the gate has a tolerance). ``verdict.judge`` turns the
evidence of every gate into intervals, statuses and sentences.

Defaults are the seeds' criteria, read as non-inferiority margins: candidate p95 latency below
1.2× production; error rate not above production's (an increase is a FAIL once it is certain, a
PASS needs the interval to stay within +2 points); exact-match agreement not more than 5 points
below the replicate noise floor. More than 10,000 pairs is a recommendation, not a gate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pricing import PriceTable
from .data import ArmData, MetricStats, NoiseFloor, ScoreStats
from .stats import (
    paired_proportion_difference,
    paired_quantile_ratios,
    sorted_quantiles,
    two_sample_proportion_difference,
)

__all__ = ["GATES", "INFERENCE", "VERDICTS", "Evidence", "Gate", "GateInput", "GateResult", "Thresholds"]

VERDICTS = ("PASS", "MARGINAL", "FAIL", "INSUFFICIENT")
INFERENCE = ("anytime", "fixed")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of the gates; each can be set from the CLI or a YAML file."""

    alpha: float = 0.10  # intervals are 1 − alpha two-sided: a wrong FAIL, or a wrong PASS, ≤ alpha/2 each
    max_p95_ratio: float = 1.2  # candidate p95 / primary p95 limit
    p95_margin: float = 0.0  # PASS while the interval stays below max_p95_ratio × (1 + margin)
    max_p50_ratio: float | None = None  # optional: also gate the median
    max_p99_ratio: float | None = None  # optional: also gate p99
    max_error_rate_increase: float = 0.0  # candidate − primary error rate: a certain excess FAILs
    error_rate_margin: float = 0.02  # PASS while the interval stays below the limit + this
    max_agreement_drop: float = (
        0.05  # exact-match rate (and each agreement metric) may be this far below the replicate floor
    )
    max_validity_drop: float = 0.0  # JSON validity: a certain drop below the primary's FAILs
    validity_margin: float = 0.02  # PASS while the interval stays above −(max_validity_drop + this)
    min_win_rate: float = 0.45  # the judge's win rate (ties count half): the seeds' "> 50%" as non-inferiority
    min_semantic_similarity: float = 0.95  # embedding similarity when no replicate was scored (the seeds' criterion)
    min_exact_match_rate: float | None = None  # optional absolute floor (used when no replicates ran)
    min_coverage: float | None = None  # optional: share of calls whose candidates ran
    min_pairs: int = 100  # fewer compared pairs: INSUFFICIENT (unless a gate already FAILs)
    recommended_pairs: int = 10_000  # fewer: a note, not a gate (the seeds' "> 10k requests")
    tuning_pairs: int = 5000  # where the confidence sequence is tightest (valid at every count)
    # "anytime": confidence sequences, valid however often the report is read. "fixed": fixed-sample
    # normal intervals, narrower, valid only when the report is read once, at a sample size chosen
    # before the experiment started (docs/report.md, "Inference").
    inference: str = "anytime"
    critical_segments: tuple[str, ...] = ()  # with segments: each of these must PASS on its own

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"threshold alpha={self.alpha} must be between 0 and 1 (e.g. 0.05)")
        for name in ("max_p95_ratio", "max_p50_ratio", "max_p99_ratio"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"threshold {name}={value} must be a positive ratio (e.g. 1.2)")
        if self.inference not in INFERENCE:
            raise ConfigError(
                f"threshold inference={self.inference!r} must be one of {list(INFERENCE)} "
                "(anytime: read the report as often as you like; fixed: read it once, at a pre-registered size)"
            )
        if self.tuning_pairs < 1 or self.min_pairs < 0:
            raise ConfigError("thresholds tuning_pairs must be ≥ 1 and min_pairs ≥ 0")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Thresholds:
        from ..errors import ConfigError

        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown threshold(s) {sorted(unknown)}; known thresholds are {sorted(known)}")
        values = dict(data)
        critical = values.get("critical_segments")
        if critical is not None:
            if not isinstance(critical, list | tuple) or not all(isinstance(v, str) for v in critical):
                raise ConfigError(f"threshold critical_segments={critical!r} must be a list of segment values")
            values["critical_segments"] = tuple(critical)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"thresholds: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a gate measured, before the family decides the level it is judged at."""

    name: str
    label: str  # how the sentence names it: "p95 latency", "error rate"…
    scale: str  # "log_ratio" (shown as a ratio), "difference" (rates, in points), "rate", "mean"
    estimate: float  # on the scale
    se: float  # standard error on the scale
    n: int  # observations the estimate rests on
    limit: float | None  # on the scale; None: reported, not gated
    pass_limit: float | None
    worse: int  # +1: higher is worse; −1: lower is worse
    detail: str = ""  # the raw numbers, in words
    min_n: int = 1  # fewer observations: INSUFFICIENT
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's finding for one candidate config (see docs/report.md for the JSON)."""

    name: str
    status: str  # PASS, MARGINAL, FAIL, INSUFFICIENT, INFO (reported, no limit) or SKIP (no data)
    reason: str
    estimate: float | None = None
    interval: tuple[float, float] | None = None
    limit: float | None = None
    pass_limit: float | None = None
    level: float | None = None  # confidence of the interval (after Holm)
    p_value: float | None = None  # p-value of "beyond the limit" (anytime-valid unless inference is fixed)
    n: int | None = None
    unit: str | None = None  # "ratio", "difference", "rate", "mean"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GateInput:
    arm: ArmData
    floor: NoiseFloor | None
    coverage: tuple[int, int, int] | None  # primary runs, scheduled, dropped
    prices: PriceTable | None
    metrics: Mapping[str, MetricStats] = field(default_factory=dict)  # the candidate's shadow.metric.* stats
    metric_floor: Mapping[str, MetricStats] = field(default_factory=dict)  # the replicates' (noise floor)
    scores: Mapping[str, ScoreStats] = field(default_factory=dict)  # otel-shadow score, candidate's pairs
    score_floor: Mapping[str, ScoreStats] = field(default_factory=dict)  # ... and the replicates'


Gate = Callable[[GateInput, Thresholds], list["Evidence | GateResult"]]


def _quantile_guard(q: float) -> int:
    """Fewer observations than this and the sample q-quantile is the extreme value itself."""
    return math.ceil(1.96**2 * max(q, 1 - q) / min(q, 1 - q)) + 1


def latency_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    arm = g.arm
    n = len(arm.primary_ms)
    if n == 0:
        return [GateResult("latency_p95", "SKIP", "no pair where both sides succeeded: latency not compared")]
    out: list[Evidence | GateResult] = []
    probs = np.linspace(0.02, 0.98, 49)
    ordered = (np.sort(arm.primary_ms), np.sort(arm.candidate_ms))  # once, for every quantile below
    distribution = {
        "q": probs.round(2).tolist(),
        "primary_ms": sorted_quantiles(ordered[0], probs).tolist(),
        "candidate_ms": sorted_quantiles(ordered[1], probs).tolist(),
    }
    limits = {0.5: (t.max_p50_ratio, 0.0), 0.95: (t.max_p95_ratio, t.p95_margin), 0.99: (t.max_p99_ratio, 0.0)}
    for r in paired_quantile_ratios(arm.primary_ms, arm.candidate_ms, seed=n, ordered=ordered):
        name = f"p{round(r.q * 100)}"
        limit, margin = limits[r.q]
        out.append(
            Evidence(
                name=f"latency_{name}",
                label=f"{name} latency",
                scale="log_ratio",
                estimate=math.log(r.ratio) if r.ratio > 0 and math.isfinite(r.ratio) else 0.0,
                se=r.log_se,
                n=n,
                limit=None if limit is None else math.log(limit),
                pass_limit=None if limit is None else math.log(limit * (1 + margin)),
                worse=+1,
                detail=f"candidate {r.candidate:.1f} ms vs primary {r.primary:.1f} ms, {n:,} pairs where both succeeded",
                min_n=_quantile_guard(r.q),
                details={
                    "primary_ms": r.primary,
                    "candidate_ms": r.candidate,
                    "bootstrap_95": list(r.interval),
                    "estimator": r.estimator,
                    **({"distribution": distribution} if r.q == 0.5 else {}),
                },
            )
        )
    return out


def error_rate_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    arm = g.arm
    if arm.judged == 0:
        return [GateResult("error_rate", "SKIP", "no finished executions to compare error rates")]
    estimate, se = paired_proportion_difference(arm.only_candidate_errors, arm.only_primary_errors, arm.judged)
    pc, pp = arm.candidate_errors / arm.judged, arm.primary_errors / arm.judged
    return [
        Evidence(
            name="error_rate",
            label="error rate",
            scale="difference",
            estimate=estimate,
            se=se,
            n=arm.judged,
            limit=t.max_error_rate_increase,
            pass_limit=t.max_error_rate_increase + t.error_rate_margin,
            worse=+1,
            detail=f"candidate {pc:.1%} vs primary {pp:.1%} over {arm.judged:,} pairs",
            details={
                "candidate_error_rate": pc,
                "primary_error_rate": pp,
                "only_candidate_errors": arm.only_candidate_errors,
                "only_primary_errors": arm.only_primary_errors,
                "both_errors": arm.both_errors,
            },
        )
    ]


def agreement_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    """Exact-match agreement, read against the noise floor (the primary config against itself)."""
    arm, floor = g.arm, g.floor
    if arm.compared == 0:
        return [
            GateResult("agreement", "SKIP", "no pair where both sides succeeded with an output: agreement not compared")
        ]
    rate = arm.matches / arm.compared
    if floor is not None and floor.compared > 0:
        floor_rate = floor.matches / floor.compared
        estimate, se = two_sample_proportion_difference(arm.matches, arm.compared, floor.matches, floor.compared)
        return [
            Evidence(
                name="agreement",
                label="exact match vs the noise floor",
                scale="difference",
                estimate=estimate,
                se=se,
                n=min(arm.compared, floor.compared),
                limit=-t.max_agreement_drop,
                pass_limit=-t.max_agreement_drop,
                worse=-1,
                detail=(
                    f"candidate–primary {rate:.1%} of {arm.compared:,} vs replicate–primary {floor_rate:.1%} "
                    f"of {floor.compared:,}"
                ),
                details={"candidate_rate": rate, "floor_rate": floor_rate, "floor_compared": floor.compared},
            )
        ]
    smoothed = (arm.matches + 0.5) / (arm.compared + 1)
    limit = t.min_exact_match_rate
    return [
        Evidence(
            name="agreement",
            label="exact match",
            scale="rate",
            estimate=rate,
            se=math.sqrt(smoothed * (1 - smoothed) / arm.compared),
            n=arm.compared,
            limit=limit,
            pass_limit=limit,
            worse=-1,
            detail=(
                f"{arm.matches:,} of {arm.compared:,}; no replicates ran, so no noise floor "
                "(set replicate_rate to read agreement against the primary's own)"
            ),
            details={"candidate_rate": rate},
        )
    ]


def _against_floor(
    name: str, what: str, c: MetricStats | ScoreStats, f: MetricStats | ScoreStats, t: Thresholds
) -> Evidence:
    """A mean that measures agreement (higher agrees more), the candidate's against the replicates'
    (the primary config against itself): a two-sample difference within ``max_agreement_drop``."""
    return Evidence(
        name=name,
        label=f"{what} vs the noise floor",
        scale="difference",
        estimate=c.mean - f.mean,
        se=math.sqrt(c.var / c.n + f.var / f.n),
        n=min(c.n, f.n),
        limit=-t.max_agreement_drop,
        pass_limit=-t.max_agreement_drop,
        worse=-1,
        detail=f"candidate–primary {c.mean:.3g} over {c.n:,} vs replicate–primary {f.mean:.3g} over {f.n:,}",
        details={"candidate_mean": c.mean, "floor_mean": f.mean, "floor_n": f.n},
    )


# comparison metrics (core.comparison) read against the noise floor: a share or a score, higher agrees more
AGREEMENT_METRICS = ("normalized_match", "similarity", "key_fields_match")


def comparison_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    """The edge's comparison metrics: each agreement metric against the replicates' (the primary
    config against itself), and JSON validity against the primary's own on the same pairs."""
    out: list[Evidence | GateResult] = []
    for name in AGREEMENT_METRICS:
        c = g.metrics.get(name)
        if c is None or c.n == 0:
            continue
        f = g.metric_floor.get(name)
        if f is None or f.n == 0:
            out.append(
                GateResult(
                    f"metric_{name}",
                    "INFO",
                    f"{name} {c.mean:.3g} over {c.n:,} pairs; no replicates ran, so no noise floor to read it against",
                    c.mean,
                    n=c.n,
                    unit="mean",
                )
            )
            continue
        out.append(_against_floor(f"metric_{name}", name, c, f, t))
    valid, primary_valid = g.metrics.get("json_valid"), g.metrics.get("primary_json_valid")
    if valid is not None and primary_valid is not None and valid.n and primary_valid.mean > 0:
        # the two rates are on the same pairs and positively correlated: ignoring the covariance
        # overstates the standard error (a wider, safer interval)
        out.append(
            Evidence(
                name="json_valid",
                label="JSON validity",
                scale="difference",
                estimate=valid.mean - primary_valid.mean,
                se=math.sqrt(valid.var / valid.n + primary_valid.var / primary_valid.n),
                n=valid.n,
                limit=-t.max_validity_drop,
                pass_limit=-(t.max_validity_drop + t.validity_margin),
                worse=-1,
                detail=f"candidate {valid.mean:.1%} vs primary {primary_valid.mean:.1%} valid JSON over {valid.n:,} pairs",
                details={"candidate_rate": valid.mean, "primary_rate": primary_valid.mean},
            )
        )
    return out


def score_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    """The batch scores (``otel-shadow score``): the judge's win rate, and embedding similarity
    against the replicates' (or, when no replicate was scored, against ``min_semantic_similarity``)."""
    out: list[Evidence | GateResult] = []
    judge = g.scores.get("judge")
    if judge is not None and judge.wins + judge.ties + judge.losses:
        n = judge.wins + judge.ties + judge.losses
        rate = (judge.wins + 0.5 * judge.ties) / n
        smoothed = (judge.wins + 0.5 * judge.ties + 0.5) / (n + 1)
        out.append(
            Evidence(
                name="judge_win_rate",
                label="judge win rate",
                scale="rate",
                estimate=rate,
                se=math.sqrt(smoothed * (1 - smoothed) / n),
                n=n,
                limit=t.min_win_rate,
                pass_limit=t.min_win_rate,
                worse=-1,
                detail=f"{judge.wins:,} wins, {judge.ties:,} ties, {judge.losses:,} losses against the primary (ties count half)",
                details={"wins": judge.wins, "ties": judge.ties, "losses": judge.losses},
            )
        )
    similar, floor = g.scores.get("semantic_similarity"), g.score_floor.get("semantic_similarity")
    if similar is not None and similar.n:
        if floor is not None and floor.n:
            out.append(_against_floor("semantic_similarity", "semantic similarity", similar, floor, t))
        else:
            out.append(
                Evidence(
                    name="semantic_similarity",
                    label="semantic similarity",
                    scale="rate",
                    estimate=similar.mean,
                    se=math.sqrt(max(similar.var, 1e-12) / similar.n),
                    n=similar.n,
                    limit=t.min_semantic_similarity,
                    pass_limit=t.min_semantic_similarity,
                    worse=-1,
                    detail=f"mean embedding similarity over {similar.n:,} pairs; no replicate was scored, so the limit is absolute",
                )
            )
    return out


def _cost_or_tokens(g: GateInput) -> tuple[str, dict[str, float]] | None:
    """Weights of (pi, po, ci, co) for the cost difference, or for total tokens without prices."""
    arm = g.arm
    if g.prices is not None:
        cp, pp = g.prices.price(arm.candidate_model), g.prices.price(arm.primary_model)
        if cp is not None and pp is not None:
            return "cost per call (USD)", {
                "pi": -pp.input / 1e6,
                "po": -pp.output / 1e6,
                "ci": cp.input / 1e6,
                "co": cp.output / 1e6,
            }
    return "tokens per call", {"pi": -1.0, "po": -1.0, "ci": 1.0, "co": 1.0}


def cost_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    """Reported, not gated: the candidate's cost (or tokens) per call minus the primary's, paired."""
    arm = g.arm
    found = _cost_or_tokens(g)
    if arm.token_pairs < 2 or found is None or any(v is None for v in arm.token_means.values()):
        return [GateResult("cost", "SKIP", "no token counts on both sides")]
    label, w = found
    mean = sum(w[a] * float(arm.token_means[a] or 0.0) for a in w)
    keys = list(w)
    variance = 0.0
    for i, a in enumerate(keys):
        for b in keys[i:]:
            cov = float(arm.token_cov.get((a, b)) or 0.0)
            variance += (1 if a == b else 2) * w[a] * w[b] * cov
    se = math.sqrt(max(variance, 0.0) / arm.token_pairs)
    base = -(w["pi"] * float(arm.token_means["pi"] or 0.0) + w["po"] * float(arm.token_means["po"] or 0.0))
    return [
        Evidence(
            name="cost",
            label=f"{label} difference",
            scale="mean",
            estimate=mean,
            se=se,
            n=arm.token_pairs,
            limit=None,
            pass_limit=None,
            worse=+1,
            detail=f"primary {base:.4g} per call, {arm.token_pairs:,} pairs with token counts",
            details={"unit": label, "primary_mean": base},
        )
    ]


def pairs_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    pairs = g.arm.pairs
    if pairs < t.min_pairs:
        return [
            GateResult(
                "pairs",
                "INSUFFICIENT",
                f"{pairs:,} pairs compared, {t.min_pairs:,} needed",
                float(pairs),
                limit=t.min_pairs,
                n=pairs,
            )
        ]
    return [
        GateResult(
            "pairs", "PASS", f"{pairs:,} pairs compared (≥ {t.min_pairs:,})", float(pairs), limit=t.min_pairs, n=pairs
        )
    ]


def coverage_gate(g: GateInput, t: Thresholds) -> list[Evidence | GateResult]:
    if g.coverage is None:
        return [GateResult("coverage", "SKIP", "no primary executions recorded")]
    _, scheduled, dropped = g.coverage
    coverage = scheduled / (scheduled + dropped) if scheduled + dropped else None
    text = f"candidates ran for {scheduled:,} calls, {dropped:,} dropped (sampling, queue, budget, time limit)"
    if t.min_coverage is None or coverage is None:
        return [GateResult("coverage", "INFO", text, coverage)]
    status = "PASS" if coverage >= t.min_coverage else "FAIL"
    return [
        GateResult(
            "coverage",
            status,
            f"{text}: coverage {coverage:.1%}, minimum {t.min_coverage:.1%}",
            coverage,
            limit=t.min_coverage,
        )
    ]


GATES: dict[str, Gate] = {
    "pairs": pairs_gate,
    "latency": latency_gate,
    "error_rate": error_rate_gate,
    "agreement": agreement_gate,
    "comparison": comparison_gate,
    "scores": score_gate,
    "cost": cost_gate,
    "coverage": coverage_gate,
}
