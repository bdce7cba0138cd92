"""The verdict over time: the report recomputed on the pairs that had arrived by each cut-off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from otel_shadow.analysis import build_report, render_html
from otel_shadow.analysis.timeline import MAX_CUTOFFS, verdict_timeline
from otel_shadow.store import Store

from .helpers import _rows, lognormal_pairs, write_pairs


def test_a_candidate_that_slows_down_half_way_passes_early_and_fails_at_the_end(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    p, c = lognormal_pairs(3000, seed=11)
    c = np.where(np.arange(3000) < 1500, c, c * 2.0)  # pairs are 1 ms apart: slower from the 1,500th on
    write_pairs(db, p, c)
    with Store.open(db, read_only=True) as store:

        def query(sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
            return _rows(store, sql)

        report = build_report(query)
        timeline = verdict_timeline(query, report)
    assert len(timeline) == MAX_CUTOFFS
    verdicts = [point.verdicts[("exp", "C")] for point in timeline]
    pairs = [n for _, n in verdicts]
    # each cut-off sees only the pairs started by then: 1/6, 2/6, … of the 3,000 (1 ms apart)
    assert pairs == [500, 1000, 1500, 2000, 2500, 3000], pairs
    assert verdicts[0][0] != "FAIL" and verdicts[2][0] != "FAIL", verdicts  # before the slowdown
    assert verdicts[-1] == (report.candidates[0].verdict, 3000) and verdicts[-1][0] == "FAIL"
    assert [pt.cutoff_us for pt in timeline] == sorted(pt.cutoff_us for pt in timeline)
    # drawn as one cell per cut-off, each with its verdict and its pairs
    page = render_html(report, timeline)
    assert 'aria-label="verdict over time"' in page
    assert "500 pairs" in page and "3,000 pairs" in page


def test_no_pairs_is_an_empty_timeline_and_too_many_cutoffs_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    Store.open(db).close()
    with Store.open(db, read_only=True) as store:

        def query(sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
            return _rows(store, sql)

        report = build_report(query)
        assert verdict_timeline(query, report) == []
        with pytest.raises(ValueError, match="cutoffs=7 must be between 1 and 6"):
            verdict_timeline(query, report, cutoffs=7)
    assert "verdict over time" not in render_html(report, [])
