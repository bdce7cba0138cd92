"""The report: for each experiment × candidate config, the metrics, the gates and a verdict.

``build_report(query)`` takes a function that runs read-only SQL (a local ``Store.query`` or the
collector's SQL endpoint) and returns a ``Report``, a plain value that renders as JSON for
pipelines or as a table for people.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .gates import GATES, GateResult, Thresholds

__all__ = ["CandidateReport", "Report", "build_report", "verdict_of"]

SUMMARY_SQL = "SELECT * FROM shadow_summary ORDER BY experiment, candidate_config_id"


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Report:
    candidates: list[CandidateReport]
    thresholds: Thresholds

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": asdict(self.thresholds), "candidates": [c.to_dict() for c in self.candidates]}

    @property
    def worst(self) -> str | None:
        order = {"FAIL": 0, "INSUFFICIENT": 1, "MARGINAL": 2, "PASS": 3}
        return min((c.verdict for c in self.candidates), key=order.__getitem__, default=None)


def verdict_of(gates: list[GateResult]) -> str:
    statuses = {g.status for g in gates}
    if "INSUFFICIENT" in statuses:
        return "INSUFFICIENT"
    if "FAIL" in statuses:
        return "FAIL"
    if "MARGINAL" in statuses:
        return "MARGINAL"
    return "PASS"


def _plain(value: Any) -> Any:
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def build_report(
    query: Callable[[str], tuple[list[str], list[tuple[Any, ...]]]],
    thresholds: Thresholds | None = None,
    gates: Mapping[str, Any] | None = None,
) -> Report:
    """Run the summary query and judge every candidate config."""
    thresholds = thresholds or Thresholds()
    gates = gates or GATES
    columns, rows = query(SUMMARY_SQL)
    out = []
    for values in rows:
        row = {c: _plain(v) for c, v in zip(columns, values)}
        results = [gate(row, thresholds) for gate in gates.values()]
        verdict = verdict_of(results)
        reasons = [g.reason for g in results if g.status in ("FAIL", "MARGINAL", "INSUFFICIENT")]
        if not reasons:
            reasons = [g.reason for g in results if g.status == "PASS"]
        if row.get("primary_p95_ms") and row.get("candidate_p95_ms") is not None:
            row["p95_ratio"] = row["candidate_p95_ms"] / row["primary_p95_ms"]
        out.append(
            CandidateReport(
                experiment=row["experiment"],
                candidate_config_id=row["candidate_config_id"],
                primary_config_id=row.get("primary_config_id"),
                verdict=verdict,
                reasons=reasons,
                metrics={k: v for k, v in row.items() if k not in ("experiment", "candidate_config_id")},
                gates=results,
            )
        )
    return Report(out, thresholds)
