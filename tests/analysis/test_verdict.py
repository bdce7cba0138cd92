"""The verdict, end to end: simulated pairs written through the real writer, judged by the real report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from otel_shadow.analysis import SCHEMA, Thresholds, render_json, render_text
from otel_shadow.analysis.gates import GateResult
from otel_shadow.analysis.report import CandidateReport
from otel_shadow.analysis.stats import harrell_davis
from otel_shadow.errors import ConfigError

from .helpers import lognormal_pairs, report_of, write_pairs


def gate(candidate: CandidateReport, name: str) -> GateResult:
    return next(g for g in candidate.gates if g.name == name)


def test_a_blatant_failure_on_few_pairs_is_a_fail_not_insufficient(tmp_path: Path) -> None:
    n = 99
    p, c = lognormal_pairs(n, seed=1)
    errors = np.arange(n) % 2 == 0  # half the candidate's calls fail
    write_pairs(tmp_path / "s.duckdb", p, c, candidate_error=errors)
    report = report_of(tmp_path / "s.duckdb")
    (candidate,) = report.candidates
    assert candidate.verdict == "FAIL"
    assert gate(candidate, "error_rate").status == "FAIL"
    assert gate(candidate, "pairs").status == "INSUFFICIENT"
    assert report.fails_on("FAIL")


def test_few_clean_pairs_are_insufficient(tmp_path: Path) -> None:
    p, c = lognormal_pairs(60, seed=2)
    write_pairs(tmp_path / "s.duckdb", p, c)
    (candidate,) = report_of(tmp_path / "s.duckdb").candidates
    assert candidate.verdict == "INSUFFICIENT"
    assert any("60 pairs compared, 100 needed" in r for r in candidate.reasons)


def test_identical_configs_pass_and_a_slower_candidate_fails(tmp_path: Path) -> None:
    p, c = lognormal_pairs(3000, seed=3)
    write_pairs(tmp_path / "same.duckdb", p, c)
    (same,) = report_of(tmp_path / "same.duckdb").candidates
    assert same.verdict == "PASS", same.reasons
    p, c = lognormal_pairs(3000, seed=4, slowdown=1.4)
    write_pairs(tmp_path / "slow.duckdb", p, c)
    (slow,) = report_of(tmp_path / "slow.duckdb").candidates
    assert slow.verdict == "FAIL"
    p95 = gate(slow, "latency_p95")
    assert p95.interval is not None
    assert p95.status == "FAIL" and p95.interval[0] > 1.2 and p95.limit == pytest.approx(1.2)
    # at 3,000 pairs the quantiles are Harrell–Davis estimates of the pairs' durations
    assert p95.details["estimator"] == "harrell_davis"
    assert p95.details["candidate_ms"] == pytest.approx(harrell_davis(c, 0.95), rel=1e-6)
    assert p95.details["primary_ms"] == pytest.approx(harrell_davis(p, 0.95), rel=1e-6)
    # the reason is a sentence with its interval and its limit
    assert re.fullmatch(r"p95 latency \+\d+% \[\+\d+%, \+\d+%\], limit \+20% \(.*\)", p95.reason), p95.reason


def test_fixed_inference_is_narrower_and_says_it_holds_for_one_read_only(tmp_path: Path) -> None:
    # 30% slower at 2,000 pairs: the confidence sequence cannot yet exclude the 1.2 limit, the
    # fixed-sample interval (one read at a pre-registered size) can
    p, c = lognormal_pairs(2000, seed=22, slowdown=1.3)
    write_pairs(tmp_path / "s.duckdb", p, c)
    (anytime,) = report_of(tmp_path / "s.duckdb").candidates
    fixed_report = report_of(tmp_path / "s.duckdb", Thresholds.from_mapping({"inference": "fixed"}))
    (fixed,) = fixed_report.candidates
    a, f = gate(anytime, "latency_p95"), gate(fixed, "latency_p95")
    assert a.estimate == f.estimate and a.level == f.level
    assert a.interval is not None and f.interval is not None
    assert a.interval[0] < f.interval[0] and f.interval[1] < a.interval[1]
    assert (anytime.verdict, fixed.verdict) == ("MARGINAL", "FAIL")
    assert "fixed-sample intervals (inference: fixed), valid only when this report is read once" in render_text(
        fixed_report
    )
    assert json.loads(render_json(fixed_report))["thresholds"]["inference"] == "fixed"
    with pytest.raises(ConfigError, match=r"inference='sometimes' must be one of \['anytime', 'fixed'\]"):
        Thresholds.from_mapping({"inference": "sometimes"})


def test_a_faster_candidate_is_worth_promoting(tmp_path: Path) -> None:
    p, c = lognormal_pairs(3000, seed=5, slowdown=0.7)
    write_pairs(tmp_path / "s.duckdb", p, c)
    (candidate,) = report_of(tmp_path / "s.duckdb").candidates
    assert candidate.verdict == "PASS" and candidate.worth_promoting
    assert any(line.startswith("faster: p95 latency -") for line in candidate.promote), candidate.promote


def test_agreement_is_judged_against_the_replicate_noise_floor(tmp_path: Path) -> None:
    n = 2000
    rng = np.random.default_rng(6)
    p, c = lognormal_pairs(n, seed=6)
    # the primary config disagrees with itself 40% of the time (temperature > 0): a candidate that
    # disagrees as often has not regressed, even though 60% agreement is far from 1.0
    write_pairs(
        tmp_path / "noisy.duckdb", p, c, candidate_differs=rng.random(n) < 0.4, replicate_differs=rng.random(n) < 0.4
    )
    (noisy,) = report_of(tmp_path / "noisy.duckdb").candidates
    agreement = gate(noisy, "agreement")
    assert agreement.status == "PASS" and noisy.verdict == "PASS", noisy.reasons
    assert agreement.details["floor_rate"] == pytest.approx(0.6, abs=0.05)
    assert noisy.metrics["noise_floor_exact_match_rate"] == agreement.details["floor_rate"]
    write_pairs(
        tmp_path / "worse.duckdb", p, c, candidate_differs=rng.random(n) < 0.7, replicate_differs=rng.random(n) < 0.4
    )
    (worse,) = report_of(tmp_path / "worse.duckdb").candidates
    assert gate(worse, "agreement").status == "FAIL" and worse.verdict == "FAIL"
    assert "noise floor" in gate(worse, "agreement").reason


def test_without_replicates_agreement_is_reported_not_gated(tmp_path: Path) -> None:
    p, c = lognormal_pairs(500, seed=7)
    write_pairs(tmp_path / "s.duckdb", p, c, candidate_differs=np.arange(500) % 2 == 0)
    (candidate,) = report_of(tmp_path / "s.duckdb").candidates
    assert gate(candidate, "agreement").status == "INFO"
    assert any("replicate_rate" in note for note in candidate.notes)
    (strict,) = report_of(tmp_path / "s.duckdb", Thresholds(min_exact_match_rate=0.9)).candidates
    assert gate(strict, "agreement").status == "FAIL"


def test_cancelled_executions_are_no_error(tmp_path: Path) -> None:
    from otel_shadow.store import Store, Writer

    from ..store.otlp import pair, request

    spans: list[Any] = []
    for i in range(300):
        spans += pair(candidate_outcome="cancelled" if i % 2 else "ok")
    with Store.open(tmp_path / "s.duckdb") as store:
        Writer(store).write(request(*spans))
    (candidate,) = report_of(tmp_path / "s.duckdb").candidates
    assert candidate.metrics["candidate_error_rate"] == 0.0 and candidate.metrics["judged_pairs"] == 150


def test_json_is_the_documented_schema(tmp_path: Path) -> None:
    p, c = lognormal_pairs(400, seed=8, slowdown=2.0)
    write_pairs(tmp_path / "s.duckdb", p, c)
    report = report_of(tmp_path / "s.duckdb")
    data = json.loads(render_json(report))
    assert data == report.to_dict()
    assert data["schema"] == SCHEMA and data["verdict"] == "FAIL"
    (candidate,) = data["candidates"]
    assert {
        "experiment",
        "candidate_config_id",
        "primary_config_id",
        "verdict",
        "reasons",
        "metrics",
        "gates",
        "notes",
        "promote",
        "worth_promoting",
    } <= set(candidate)
    p95 = next(g for g in candidate["gates"] if g["name"] == "latency_p95")
    assert {"estimate", "interval", "limit", "pass_limit", "status", "level", "p_value", "n", "unit", "reason"} <= set(
        p95
    )
    assert p95["unit"] == "ratio" and p95["interval"][0] <= p95["estimate"] <= p95["interval"][1]
    assert p95["estimate"] == pytest.approx(candidate["metrics"]["p95_ratio"])


def test_text_names_each_gate_and_the_verdict(tmp_path: Path) -> None:
    p, c = lognormal_pairs(400, seed=9, slowdown=2.0)
    write_pairs(tmp_path / "s.duckdb", p, c)
    text = render_text(report_of(tmp_path / "s.duckdb"))
    assert "verdict: FAIL" in text and "latency_p95" in text and "anytime-valid" in text
    assert render_text(report_of(tmp_path / "s.duckdb")) == text  # the seeds make it reproducible


def test_fail_on_levels() -> None:
    from otel_shadow.analysis import CandidateReport, Report

    def report(*verdicts: str) -> Report:
        return Report([CandidateReport("e", str(i), "p", v, [], {}, []) for i, v in enumerate(verdicts)], Thresholds())

    assert report("PASS", "FAIL").worst == "FAIL"
    assert report("INSUFFICIENT", "MARGINAL").worst == "MARGINAL"
    assert not report("PASS", "MARGINAL").fails_on("FAIL")
    assert report("PASS", "MARGINAL").fails_on("MARGINAL")
    assert report("INSUFFICIENT").fails_on("MARGINAL") and not report("PASS").fails_on("MARGINAL")
    assert not report().fails_on("MARGINAL")


def test_thresholds_are_checked_with_the_key_named() -> None:
    with pytest.raises(ConfigError, match="unknown threshold"):
        Thresholds.from_mapping({"max_p59_ratio": 1.0})
    with pytest.raises(ConfigError, match="alpha"):
        Thresholds.from_mapping({"alpha": 2})
    assert Thresholds.from_mapping({"max_p95_ratio": 1.5}).max_p95_ratio == 1.5


def test_a_failing_segment_fails_the_candidate_and_critical_segments_must_pass(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    n_chat, n_checkout = 2000, 150
    p, c = lognormal_pairs(n_chat + n_checkout, seed=10)
    routes = ["/chat"] * n_chat + ["/checkout"] * n_checkout
    errors = np.concatenate([rng.random(n_chat) < 0.0, rng.random(n_checkout) < 0.3])  # only /checkout breaks
    write_pairs(tmp_path / "s.duckdb", p, c, candidate_error=errors, routes=routes)
    whole = report_of(tmp_path / "s.duckdb").candidates[0]
    assert whole.segments == []
    (candidate,) = report_of(tmp_path / "s.duckdb", segment_by="http.route").candidates
    by = {s.segment: s for s in candidate.segments}
    assert set(by) == {"/chat", "/checkout"} and by["/checkout"].pairs == n_checkout
    assert by["/checkout"].verdict == "FAIL" and by["/chat"].verdict != "FAIL"
    assert candidate.verdict == "FAIL"
    assert any(r.startswith("http.route=/checkout: error rate +") for r in candidate.reasons), candidate.reasons
    segmented = report_of(tmp_path / "s.duckdb", segment_by="http.route")
    assert "segment http.route=/checkout: FAIL  (150 pairs)" in render_text(segmented)
    assert json.loads(render_json(segmented))["candidates"][0]["segments"][1]["segment"] == "/checkout"
    # a critical segment with no pairs yet cannot PASS
    (strict,) = report_of(
        tmp_path / "s.duckdb", Thresholds(critical_segments=("/refund",)), segment_by="http.route"
    ).candidates
    assert strict.verdict == "FAIL"  # FAIL still ranks first
    write_pairs(tmp_path / "ok.duckdb", p[:n_chat], c[:n_chat], routes=routes[:n_chat])
    (ok,) = report_of(
        tmp_path / "ok.duckdb", Thresholds(critical_segments=("/refund",)), segment_by="http.route"
    ).candidates
    assert ok.verdict == "INSUFFICIENT" and "critical segment http.route=/refund has no pairs" in ok.reasons


def test_html_report_plots_each_segments_interval_per_gate_on_one_shared_scale(tmp_path: Path) -> None:
    from otel_shadow.analysis import render_html

    rng = np.random.default_rng(10)
    p, c = lognormal_pairs(1150, seed=10)
    routes = ["/chat"] * 1000 + ["/check<b>out"] * 150
    errors = np.concatenate([np.zeros(1000, dtype=bool), rng.random(150) < 0.3])  # only /check<b>out breaks
    write_pairs(tmp_path / "s.duckdb", p, c, candidate_error=errors, routes=routes)
    report = report_of(tmp_path / "s.duckdb", Thresholds(critical_segments=("/chat",)), segment_by="http.route")
    (candidate,) = report.candidates
    page = render_html(report)
    figure = re.search(r'<svg[^>]*aria-label="error_rate per segment">(.*?)</svg>', page, re.S)
    assert figure is not None and 'aria-label="latency_p95 per segment"' in page
    rows = re.findall(r'<text x="4" y="(\d+)" font-size="12">([^<]*)</text>', figure.group(1))
    by = {s.segment: s for s in candidate.segments}
    status = {s: next(g.status for g in by[s].gates if g.name == "error_rate") for s in by}
    assert [label for _, label in rows] == [
        "all pairs · FAIL",
        f"/chat (critical) · {status['/chat']}",
        "/check&lt;b&gt;out · FAIL",  # escaped
    ]
    # one scale: every row's FAIL line at the same x, and the broken segment's estimate right of the other's
    limits = set(
        re.findall(
            r'<line x1="([\d.]+)" x2="[\d.]+" y1="\d+" y2="\d+" stroke="#cf222e" stroke-dasharray', figure.group(1)
        )
    )
    assert len(limits) == 1
    dots = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', figure.group(1))]
    assert len(dots) == 3 and dots[2] > dots[1] and float(limits.pop()) <= dots[2]


def test_a_segment_name_that_is_not_an_attribute_is_refused(tmp_path: Path) -> None:
    p, c = lognormal_pairs(10, seed=11)
    write_pairs(tmp_path / "s.duckdb", p, c)
    with pytest.raises(ConfigError, match="not an attribute name"):
        report_of(tmp_path / "s.duckdb", segment_by="x'; DROP TABLE spans; --")


def test_html_report_is_self_contained_and_shows_the_verdicts(tmp_path: Path) -> None:
    from html.parser import HTMLParser

    from otel_shadow.analysis import render_html

    p, c = lognormal_pairs(400, seed=13, slowdown=2.0)
    routes = ["/chat<script>alert(1)</script>" if i % 2 else "/faq" for i in range(400)]
    write_pairs(tmp_path / "s.duckdb", p, c, routes=routes)
    page = render_html(report_of(tmp_path / "s.duckdb", segment_by="http.route"))

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict[str, str | None]]] = []
            self.text: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append((tag, dict(attrs)))

        def handle_data(self, data: str) -> None:
            self.text.append(data)

    parsed = Collect()
    parsed.feed(page)
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and "link" not in tags and "img" not in tags  # nothing to fetch or run
    assert not [a for _, attrs in parsed.tags for k, a in attrs.items() if k in ("src", "href")]
    assert "svg" in tags and "polyline" in tags  # the interval and latency plots
    text = " ".join(parsed.text)
    assert (
        "FAIL" in text and "p95 latency +" in text and "/chat<script>alert(1)</script>" in text
    )  # escaped, shown as text
    (tmp_path / "report.html").write_text(page)
