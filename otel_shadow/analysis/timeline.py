"""The verdict over time: the same report recomputed on the pairs that had arrived by a few cut-offs.

The intervals are anytime-valid confidence sequences, so looking at the verdict at every cut-off
is allowed: a candidate that flips PASS → FAIL as data arrives is a real finding, not an artefact
of peeking. Each cut-off is one more ``build_report`` on the pairs started up to then (the views
``shadow_pairs`` and ``shadow_metrics`` restricted by ``start_time``; coverage is read over all
spans), so the number of cut-offs is kept small (``MAX_CUTOFFS``); the last point is the report itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..pricing import PriceTable
from .data import Query
from .gates import Gate, Thresholds
from .report import Report, build_report

__all__ = ["MAX_CUTOFFS", "TimelinePoint", "verdict_timeline"]

MAX_CUTOFFS = 6
_TIMED_VIEWS = re.compile(r"\b(shadow_pairs|shadow_metrics)\b")


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """The verdicts on the pairs started at or before ``cutoff_us`` (microseconds since the epoch, UTC)."""

    cutoff_us: int
    verdicts: dict[tuple[str, str], tuple[str, int]]  # (experiment, candidate config) -> (verdict, pairs)


def _points(report: Report) -> dict[tuple[str, str], tuple[str, int]]:
    return {
        (c.experiment, c.candidate_config_id): (c.verdict, int(c.metrics.get("pairs") or 0)) for c in report.candidates
    }


def _until(query: Query, cutoff_us: int) -> Query:
    """``query`` with every read of the timed views restricted to pairs started by ``cutoff_us``."""

    def restricted(sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
        return query(
            _TIMED_VIEWS.sub(
                lambda m: f"(SELECT * FROM {m.group(1)} WHERE start_time <= make_timestamp({cutoff_us}))", sql
            )
        )

    return restricted


def verdict_timeline(
    query: Query,
    report: Report,
    thresholds: Thresholds | None = None,
    gates: Mapping[str, Gate] | None = None,
    prices: PriceTable | None = None,
    segment_by: str | None = None,
    cutoffs: int = MAX_CUTOFFS,
) -> list[TimelinePoint]:
    """``cutoffs`` evenly spaced points from the first pair to the last; the last is ``report`` itself.

    Empty when there are no pairs. ``report`` must be ``build_report`` of the same ``query`` and
    arguments (it is reused, not recomputed).
    """
    if not 1 <= cutoffs <= MAX_CUTOFFS:
        raise ValueError(f"cutoffs={cutoffs} must be between 1 and {MAX_CUTOFFS} (each one is a whole report)")
    _, rows = query("SELECT epoch_us(min(start_time)), epoch_us(max(start_time)) FROM shadow_pairs")
    if not rows or rows[0][0] is None:
        return []
    first, last = int(rows[0][0]), int(rows[0][1])
    steps = cutoffs if last > first else 1
    out = []
    for i in range(1, steps):
        cutoff = first + (last - first) * i // steps
        earlier = build_report(_until(query, cutoff), thresholds, gates, prices, segment_by, sections=False)
        out.append(TimelinePoint(cutoff, _points(earlier)))
    out.append(TimelinePoint(last, _points(report)))
    return out
