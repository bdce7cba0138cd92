"""The report: for each experiment × candidate config, the gates, their intervals and a verdict.

``build_report(query)`` takes a function that runs read-only SQL (a local ``Store.query`` or the
collector's SQL endpoint) and returns a ``Report``, a plain value. ``Report.to_dict()`` is the JSON
that ``otel-shadow report --format json`` prints (its schema is documented in docs/report.md and
versioned by ``SCHEMA``); ``otel_shadow.analysis.render`` turns it into text for people.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..pricing import PriceTable
from .canary import CanaryReport, build_canary_reports
from .data import (
    ArmData,
    MetricStats,
    NoiseFloor,
    Query,
    ScoreStats,
    read_arms,
    read_coverage,
    read_metrics,
    read_scores,
)
from .ended import EndedExperiment, read_ended
from .gates import GATES, Gate, GateInput, GateResult, Thresholds
from .rollout_state import RolloutState, read_rollout
from .verdict import SEVERITY, judge_family, verdict_of, worth_promoting

__all__ = ["SCHEMA", "CandidateReport", "Report", "SegmentReport", "build_report"]

SCHEMA = "otel-shadow.report/2"


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class SegmentReport:
    """One segment (a value of the ``segment_by`` attribute) of one candidate."""

    segment: str
    critical: bool
    verdict: str
    pairs: int
    reasons: list[str]
    gates: list[GateResult]


@dataclass(frozen=True, slots=True)
class CandidateReport:
    """The verdict on one candidate config of one experiment."""

    experiment: str
    candidate_config_id: str
    primary_config_id: str | None
    verdict: str
    reasons: list[str]
    metrics: dict[str, Any]
    gates: list[GateResult]
    notes: list[str] = field(default_factory=list)
    promote: list[str] = field(default_factory=list)  # why a PASS is also worth promoting
    segments: list[SegmentReport] = field(default_factory=list)

    @property
    def worth_promoting(self) -> bool:
        return bool(self.promote)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["worth_promoting"] = self.worth_promoting
        return _clean(out)


@dataclass(frozen=True, slots=True)
class Report:
    candidates: list[CandidateReport]
    thresholds: Thresholds
    segment_by: str | None = None
    canary: list[CanaryReport] = field(default_factory=list)  # unpaired: cohorts, not pairs (analysis.canary)
    rollout: list[RolloutState] = field(default_factory=list)  # each rule's plan and its moves
    ended: list[EndedExperiment] = field(default_factory=list)  # experiments past a time limit (analysis.ended)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": self.worst,
            "segment_by": self.segment_by,
            "thresholds": _clean(asdict(self.thresholds)),
            "candidates": [c.to_dict() for c in self.candidates],
            "canary": [_clean(c.to_dict()) for c in self.canary],
            "rollout": [_clean(r.to_dict()) for r in self.rollout],
            "ended": [e.to_dict() for e in self.ended],
        }

    @property
    def worst(self) -> str | None:
        """The worst verdict over all candidates (FAIL < MARGINAL < INSUFFICIENT < PASS)."""
        return min((c.verdict for c in self.candidates), key=SEVERITY.__getitem__, default=None)

    def fails_on(self, level: str) -> bool:
        """True when some candidate is at ``level`` or worse (``FAIL``: a FAIL; ``MARGINAL``: anything but PASS)."""
        if level not in ("FAIL", "MARGINAL"):
            raise ValueError(f"fail-on level {level!r} must be FAIL or MARGINAL")
        worst = self.worst
        if worst is None:
            return False
        return worst == "FAIL" if level == "FAIL" else worst != "PASS"


def _metrics(arm: ArmData, coverage: tuple[int, int, int] | None, gates: list[GateResult]) -> dict[str, Any]:
    m: dict[str, Any] = {
        "candidate_model": arm.candidate_model,
        "primary_model": arm.primary_model,
        "pairs": arm.pairs,
        "judged_pairs": arm.judged,
        "both_ok_pairs": len(arm.primary_ms),
        "primary_error_rate": arm.primary_errors / arm.judged if arm.judged else None,
        "candidate_error_rate": arm.candidate_errors / arm.judged if arm.judged else None,
        "exact_match_rate": arm.matches / arm.compared if arm.compared else None,
        "first_pair_at": arm.first_pair_at,
        "last_pair_at": arm.last_pair_at,
    }
    for key, alias in (
        ("primary_input_tokens_avg", "pi"),
        ("primary_output_tokens_avg", "po"),
        ("candidate_input_tokens_avg", "ci"),
        ("candidate_output_tokens_avg", "co"),
    ):
        m[key] = arm.token_means.get(alias)
    for g in gates:
        if g.name.startswith("latency_p") and g.details:
            q = g.name.removeprefix("latency_")
            m[f"primary_{q}_ms"] = g.details.get("primary_ms")
            m[f"candidate_{q}_ms"] = g.details.get("candidate_ms")
            m[f"{q}_ratio"] = g.estimate
        if g.name == "agreement" and "floor_rate" in g.details:
            m["noise_floor_exact_match_rate"] = g.details["floor_rate"]
    if coverage is not None:
        primary_runs, scheduled, dropped = coverage
        m.update(
            primary_runs=primary_runs,
            scheduled=scheduled,
            dropped=dropped,
            coverage=scheduled / (scheduled + dropped) if scheduled + dropped else None,
        )
    return m


_REASONS_FOR = {
    "FAIL": ("FAIL",),
    "INSUFFICIENT": ("INSUFFICIENT", "FAIL"),
    "MARGINAL": ("MARGINAL",),
    "PASS": ("PASS",),
}


def _reasons(verdict: str, gates: list[GateResult]) -> list[str]:
    return [g.reason for g in gates if g.status in _REASONS_FOR[verdict]]


def _findings(
    arm: ArmData,
    floor: NoiseFloor | None,
    coverage: tuple[int, int, int] | None,
    prices: PriceTable | None,
    gates: Mapping[str, Gate],
    t: Thresholds,
    metrics: Mapping[str, MetricStats] | None = None,
    metric_floor: Mapping[str, MetricStats] | None = None,
    scores: Mapping[str, ScoreStats] | None = None,
    score_floor: Mapping[str, ScoreStats] | None = None,
) -> list[Any]:
    given = GateInput(arm, floor, coverage, prices, metrics or {}, metric_floor or {}, scores or {}, score_floor or {})
    return [f for gate in gates.values() for f in gate(given, t)]


def build_report(
    query: Query,
    thresholds: Thresholds | None = None,
    gates: Mapping[str, Gate] | None = None,
    prices: PriceTable | None = None,
    segment_by: str | None = None,
    sections: bool = True,
) -> Report:
    """Read every candidate's pairs through ``query`` and judge it (replicates are its noise floor).

    With ``sections`` (the default), also the canary cohorts' unpaired verdicts, each rule's
    rollout plan state and the experiments that ended on a time limit (``Report.canary``,
    ``Report.rollout``, ``Report.ended``).

    With ``segment_by`` (an attribute of the primary execution, e.g. ``http.route``), each value
    is judged too, in the same Holm family as the whole: a FAIL in any segment fails the
    candidate, and each of ``thresholds.critical_segments`` must PASS on its own.
    """
    t = thresholds or Thresholds()
    gates = gates or GATES
    arms = read_arms(query)
    coverage = read_coverage(query)
    metrics = read_metrics(query)
    scores = read_scores(query)
    floors = {
        (a.experiment, a.config_id): NoiseFloor(a.pairs, a.compared, a.matches) for a in arms if a.role == "replicate"
    }
    by_segment: dict[tuple[str, str], list[ArmData]] = {}
    segment_floors: dict[tuple[str, str, str | None], NoiseFloor] = {}
    if segment_by is not None:
        for a in read_arms(query, segment_by):
            if a.role == "candidate":
                by_segment.setdefault((a.experiment, a.config_id), []).append(a)
            else:
                segment_floors[(a.experiment, a.config_id, a.segment)] = NoiseFloor(a.pairs, a.compared, a.matches)
    # coverage is per experiment; comparison metrics are read for the whole candidate
    segment_gates = {k: g for k, g in gates.items() if k not in ("coverage", "comparison", "scores")}
    out = []
    for arm in arms:
        if arm.role != "candidate":
            continue  # replicates are the floor
        key = (arm.experiment, arm.primary_config_id or "")
        floor = floors.get(key)
        segments = by_segment.get((arm.experiment, arm.config_id), [])
        groups = [
            _findings(
                arm,
                floor,
                coverage.get(arm.experiment),
                prices,
                gates,
                t,
                metrics.get((arm.experiment, arm.config_id, "candidate")),
                metrics.get((arm.experiment, arm.primary_config_id or "", "replicate")),
                scores.get((arm.experiment, arm.config_id, "candidate")),
                scores.get((arm.experiment, arm.primary_config_id or "", "replicate")),
            )
        ]
        groups += [
            _findings(
                s,
                segment_floors.get((s.experiment, s.primary_config_id or "", s.segment)),
                None,
                prices,
                segment_gates,
                t,
            )
            for s in segments
        ]
        judged = judge_family(groups, t)
        results = judged[0]
        verdict = verdict_of(results)
        reasons = _reasons(verdict, results)
        segment_reports = []
        for s, seg_results in zip(segments, judged[1:]):
            critical = s.segment in t.critical_segments
            seg_verdict = verdict_of(seg_results)
            segment_reports.append(
                SegmentReport(
                    str(s.segment), critical, seg_verdict, s.pairs, _reasons(seg_verdict, seg_results), seg_results
                )
            )
            # any segment's FAIL fails the candidate; a critical segment's verdict counts in full
            if seg_verdict == "FAIL" or (critical and SEVERITY[seg_verdict] < SEVERITY[verdict]):
                if SEVERITY[seg_verdict] < SEVERITY[verdict]:
                    verdict, reasons = seg_verdict, []
                if seg_verdict == verdict:
                    reasons += [f"{segment_by}={s.segment}: {r}" for r in _reasons(seg_verdict, seg_results)]
        for name in t.critical_segments if segment_by is not None else ():
            if not any(s.segment == name for s in segments):
                if SEVERITY["INSUFFICIENT"] < SEVERITY[verdict]:
                    verdict, reasons = "INSUFFICIENT", []
                if verdict == "INSUFFICIENT":
                    reasons.append(f"critical segment {segment_by}={name} has no pairs")
        notes = []
        if arm.pairs < t.recommended_pairs:
            notes.append(
                f"{arm.pairs:,} pairs so far; {t.recommended_pairs:,} are recommended before a rollout "
                "(the intervals already account for the smaller sample)"
            )
        if floor is None:
            notes.append("no replicates: agreement is not read against a noise floor (set replicate_rate)")
        out.append(
            CandidateReport(
                experiment=arm.experiment,
                candidate_config_id=arm.config_id,
                primary_config_id=arm.primary_config_id,
                verdict=verdict,
                reasons=reasons,
                metrics=_metrics(arm, coverage.get(arm.experiment), results),
                gates=results,
                notes=notes,
                promote=worth_promoting(verdict, results),
                segments=segment_reports,
            )
        )
    if not sections:
        return Report(out, t, segment_by)
    return Report(out, t, segment_by, build_canary_reports(query, t), read_rollout(query), read_ended(query))
