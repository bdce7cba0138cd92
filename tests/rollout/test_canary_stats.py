"""Canary cohorts: unpaired statistics between users served the candidate and the primary cohort."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from otel_shadow.analysis import build_report, render_html, render_json, render_text
from otel_shadow.analysis.canary import (
    bootstrap_log_quantile_ratio,
    bootstrap_rate_difference,
    build_canary_reports,
)
from otel_shadow.analysis.data import Query
from otel_shadow.store import Store

from .ramp_data import ns, write_cohorts

AT = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def _query(store: Store) -> Query:
    def run(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = store.query(sql)
        return result.columns, result.rows

    return run


def test_bootstrap_se_of_a_rate_difference_matches_the_binomial_formula() -> None:
    estimate, se = bootstrap_rate_difference(100, 1000, 50, 1000, resamples=4000)
    formula = math.sqrt(0.1 * 0.9 / 1000 + 0.05 * 0.95 / 1000)
    assert estimate == pytest.approx(0.05)
    assert se == pytest.approx(formula, rel=0.1)


def test_no_error_in_either_cohort_still_has_a_width() -> None:
    _, se = bootstrap_rate_difference(0, 200, 0, 200)
    assert se > 0


def test_bootstrap_se_of_a_p95_ratio_shrinks_with_the_sample_and_survives_subsampling() -> None:
    rng = np.random.default_rng(1)
    small = bootstrap_log_quantile_ratio(rng.lognormal(0, 0.5, 1000), rng.lognormal(0, 0.5, 1000))[3]
    large = bootstrap_log_quantile_ratio(rng.lognormal(0, 0.5, 100_000), rng.lognormal(0, 0.5, 100_000))[3]
    # se ∝ 1/√n: 100× the calls, a tenth of the width (the 100k cohorts are subsampled and rescaled)
    assert large == pytest.approx(small / 10, rel=0.3)


def test_a_slower_canary_shows_its_p95_ratio() -> None:
    rng = np.random.default_rng(2)
    qc, qp, log_ratio, _ = bootstrap_log_quantile_ratio(rng.lognormal(0, 0.5, 5000) * 1.5, rng.lognormal(0, 0.5, 5000))
    assert math.exp(log_ratio) == pytest.approx(1.5, rel=0.08)
    assert qc > qp


def test_a_canary_as_good_as_the_primary_passes_unpaired(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=3000, primary=3000, at=AT, seed=3)
        [report] = build_canary_reports(_query(store))
    assert report.verdict == "PASS", report.reasons
    assert report.to_dict()["statistics"] == "unpaired"
    assert report.metrics["canary_calls"] == 3000 and report.metrics["primary_calls"] == 3000
    assert {g.name for g in report.gates} == {"canary_error_rate", "canary_latency_p95"}


def test_a_canary_with_more_errors_fails(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=1000, primary=1000, at=AT, seed=4, canary_error_rate=0.2)
        [report] = build_canary_reports(_query(store))
    assert report.verdict == "FAIL"
    assert any("canary error rate" in r for r in report.reasons)


def test_a_slower_canary_fails_on_p95(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=2000, primary=2000, at=AT, seed=5, slowdown=2.0)
        [report] = build_canary_reports(_query(store))
    gate = next(g for g in report.gates if g.name == "canary_latency_p95")
    assert report.verdict == "FAIL" and gate.status == "FAIL"
    assert gate.estimate == pytest.approx(2.0, rel=0.1)


def test_too_few_canary_calls_is_insufficient(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=20, primary=500, at=AT, seed=6)
        [report] = build_canary_reports(_query(store))
    assert report.verdict == "INSUFFICIENT"


def test_the_primary_cohort_is_the_canary_window_only(tmp_path: Path) -> None:
    """Primary calls from before the first canary call are another period, not the control cohort."""
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=0, primary=700, at=AT, seed=7, primary_error_rate=0.5)
        write_cohorts(store, "chat", canary=400, primary=300, at=AT + dt.timedelta(hours=1), seed=8)
        [report] = build_canary_reports(_query(store))
        since = build_canary_reports(_query(store), since_us=ns(AT + dt.timedelta(hours=2)) // 1000)
    assert report.metrics["primary_calls"] == 300
    assert report.metrics["primary_error_rate"] == 0.0
    assert since == []  # nothing from then on


def test_the_report_shows_canary_in_its_own_unpaired_section(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=500, primary=500, at=AT, seed=9)
        report = build_report(_query(store))
    text = render_text(report)
    assert "Canary (UNPAIRED" in text and "chat · canary C vs primary P" in text
    data = json.loads(render_json(report))
    assert data["canary"][0]["statistics"] == "unpaired"
    assert data["canary"][0]["canary_config_id"] == "C"
    assert data["candidates"] == []  # canary calls are no shadow pairs


STEP = AT + dt.timedelta(hours=1)  # the canary 100% step begins; every caller has a key


def _canary_100(store: Store, **canary: Any) -> None:
    """The canary 50% step's cohorts, then a 100% step with canary calls only (no keyless caller)."""
    write_cohorts(store, "chat", canary=2000, primary=2000, at=AT, seed=10)
    write_cohorts(store, "chat", canary=0, primary=500, at=AT - dt.timedelta(hours=1), seed=11, primary_error_rate=0.5)
    write_cohorts(store, "chat", canary=2000, primary=0, at=STEP, seed=12, **canary)


def test_canary_100_percent_with_only_keyed_callers_passes_on_the_primary_calls_before_the_step(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        _canary_100(store)
        [report] = build_canary_reports(_query(store), since_us=ns(STEP) // 1000)
    assert report.verdict == "PASS", report.reasons
    # as many primary calls as canary calls, the most recent ones: the 50% step's, not the erroring hour before it
    assert report.metrics["primary_calls"] == 2000 and report.metrics["primary_before_window"] == 2000
    assert report.metrics["primary_error_rate"] == 0.0
    assert report.metrics["first_primary_at"].startswith("2030-01-01T00:00:02")  # primaries follow 2000 canary calls
    assert report.metrics["last_primary_at"] < report.metrics["first_canary_at"]
    assert report.primary_config_id == "P"
    [note] = [n for n in report.notes if n.startswith("baseline from before this step")]
    assert "had 0 primary call(s), 100 needed" in note and report.metrics["first_primary_at"] in note


def test_canary_100_percent_with_only_keyed_callers_fails_a_bad_candidate(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        _canary_100(store, canary_error_rate=0.2)
        [report] = build_canary_reports(_query(store), since_us=ns(STEP) // 1000)
    assert report.verdict == "FAIL"
    assert any("canary error rate" in r and "before the window" in r for r in report.reasons)


def test_a_window_with_enough_primary_calls_takes_none_from_before_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=0, primary=700, at=AT, seed=7, primary_error_rate=0.5)
        write_cohorts(store, "chat", canary=400, primary=100, at=STEP, seed=8)
        [report] = build_canary_reports(_query(store))
    assert report.metrics["primary_calls"] == 100 and report.metrics["primary_before_window"] == 0
    assert not any(n.startswith("baseline from before") for n in report.notes)


def test_the_report_shows_the_baseline_window_from_before_the_step(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        write_cohorts(store, "chat", canary=0, primary=600, at=AT, seed=13)  # before any canary
        write_cohorts(store, "chat", canary=500, primary=0, at=STEP, seed=14)  # straight to everyone keyed
        report = build_report(_query(store))
    [canary] = report.canary
    first, last = canary.metrics["first_primary_at"], canary.metrics["last_primary_at"]
    assert canary.metrics["primary_calls"] == 500 and first < last < canary.metrics["first_canary_at"]
    window = f"primary from {first} to {last}, 500 of them before the window"
    assert window in " ".join(render_text(report).split())  # in the gates' findings (rich wraps lines)
    page = html.unescape(render_html(report))
    assert window in page and "baseline from before this step" in page
    assert json.loads(render_json(report))["canary"][0]["metrics"]["primary_before_window"] == 500


def test_a_ramp_completes_canary_100_percent_with_only_keyed_callers(tmp_path: Path) -> None:
    from otel_shadow.instrumentation.rules import parse_rules
    from otel_shadow.rollout.plan import parse_plan
    from otel_shadow.rollout.ramp import Ramp

    from .ramp_data import FakeClock

    rules = tmp_path / "shadow.yaml"
    rules.write_text(
        "rules:\n  - name: chat\n    match: {provider: openai}\n    sample_rate: 1.0\n"
        "    canary: {fraction: 0.0, key: user}\n    candidates:\n      - model: gpt-4o-mini\n"
    )
    plan = parse_plan(
        "steps:\n  - {phase: shadow, fraction: 1.0, min_time: 0}\n  - {phase: canary, fraction: 0.5, min_time: 0}\n"
        "  - {phase: canary, fraction: 1.0, min_time: 0}\n",
        "p.yaml",
    )
    clock = FakeClock()
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, plan, parse_rules, clock=clock)
        ramp.promote("alice@ops")
        ramp.promote("alice@ops")  # at canary 50%
        write_cohorts(store, "chat", canary=2000, primary=2000, at=clock.tick(60), seed=15)
        moved = ramp.advance()
        assert moved.action == "advance", moved.message  # to canary 100%
        write_cohorts(store, "chat", canary=2000, primary=0, at=clock.tick(60), seed=16)  # every caller keyed
        outcome = ramp.advance()
    assert (outcome.action, outcome.verdict) == ("complete", "PASS"), outcome.message
