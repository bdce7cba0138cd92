"""Verdict-gated ramps: synthetic pairs through the real writer into DuckDB, a fake clock, the real rules parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.analysis import build_report, render_json, render_text
from otel_shadow.analysis.data import Query
from otel_shadow.instrumentation.rules import load_rules, parse_rules
from otel_shadow.rollout.plan import DEFAULT_PLAN, Step, parse_plan
from otel_shadow.rollout.ramp import Ramp, StepVerdict, decide
from otel_shadow.store import Store

from .ramp_data import FakeClock, write_cohorts, write_pairs

RULES = """\
# the team's shadow rules: keep this comment
rules:
  - name: chat
    match: {provider: openai, model: "gpt-4o*"}
    sample_rate: 0.01   # tiny to begin with
    canary: {fraction: 0.0, key: user}
    candidates:
      - model: gpt-4o-mini
"""


def _rules(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "shadow.yaml"
    path.write_text(text)
    return path


def _values(path: Path) -> tuple[float, float | None]:
    rule = load_rules(path).rules[0]
    return rule.sample_rate, rule.canary.fraction if rule.canary else None


def _reader(store: Store) -> Query:
    def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = store.query(sql)
        return result.columns, result.rows

    return query


def _moves(store: Store) -> list[tuple[str, int, str, str, str | None]]:
    rows = store.query("SELECT action, step, status, actor, verdict FROM rollout_history ORDER BY seq").rows
    return [tuple(r) for r in rows]


def test_a_good_candidate_walks_the_default_plan_to_100_percent(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    clock = FakeClock()
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, DEFAULT_PLAN, parse_rules, clock=clock)
        assert ramp.advance().action == "start"
        assert _values(rules) == (0.05, 0.0)
        seen = []
        for index, step in enumerate(DEFAULT_PLAN.steps):
            at = clock.tick(60)
            if step.phase == "shadow":
                write_pairs(store, "chat", 2000, at, seed=index)
            else:
                write_cohorts(store, "chat", canary=3000, primary=3000, at=at, seed=index)
            if index == 0:  # PASS on enough pairs, but the step's hour is not over: hold, nothing written
                before = rules.read_bytes()
                held = ramp.advance()
                assert held.action == "hold" and held.verdict == "PASS" and "s at this step" in held.message
                assert rules.read_bytes() == before
            clock.tick(step.min_time_s)
            outcome = ramp.advance()
            assert outcome.verdict == "PASS", outcome.message
            seen.append(_values(rules))
        assert outcome.action == "complete" and outcome.status == "complete"
        assert seen == [(0.25, 0.0), (1.0, 0.0), (1.0, 0.05), (1.0, 0.25), (1.0, 0.5), (1.0, 1.0), (1.0, 1.0)]
        assert [m[0] for m in _moves(store)] == ["start"] + ["advance"] * 6 + ["complete"]
        assert ramp.advance().action == "none"  # a complete plan stays complete
        report = build_report(_reader(store))
    text = rules.read_text()
    assert text.startswith("# the team's shadow rules: keep this comment\n")
    assert "sample_rate: 1.0   # tiny to begin with" in text  # only the number changed
    [state] = json.loads(render_json(report))["rollout"]
    assert state["rule"] == "chat" and state["status"] == "complete" and len(state["history"]) == 8
    assert state["history"][1]["verdict"] == "PASS" and state["history"][1]["actor"] == "rollout"
    assert "rule chat: complete, canary 100%" in render_text(report)


@pytest.mark.parametrize(
    ("bad", "reason"), [({"candidate_error_rate": 0.3}, "error rate"), ({"slowdown": 1.6}, "p95 latency")]
)
def test_a_candidate_with_more_errors_or_slower_is_rolled_back(
    tmp_path: Path, bad: dict[str, float], reason: str
) -> None:
    rules = _rules(tmp_path)
    clock = FakeClock()
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, DEFAULT_PLAN, parse_rules, clock=clock)
        ramp.advance()
        write_pairs(store, "chat", 2000, clock.tick(60), seed=0)
        clock.tick(3600)
        assert ramp.advance().action == "advance"
        assert _values(rules) == (0.25, 0.0)
        write_pairs(store, "chat", 600, clock.tick(60), seed=2, **bad)
        outcome = ramp.advance()  # a FAIL does not wait for min_time
        assert outcome.action == "rollback" and outcome.verdict == "FAIL" and reason in outcome.message
        assert _values(rules) == (0.05, 0.0)
        assert _moves(store)[-1] == ("rollback", 0, "rolled_back", "rollout", "FAIL")
        before = rules.read_bytes()
        clock.tick(86400)
        again = ramp.advance()
        assert again.action == "none" and "promote" in again.message  # stays rolled back until a person says so
        assert rules.read_bytes() == before


def test_a_failing_canary_is_rolled_back_to_no_canary(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    plan = parse_plan("steps:\n  - {phase: shadow, fraction: 1.0}\n  - {phase: canary, fraction: 0.1}\n", "p.yaml")
    clock = FakeClock()
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, plan, parse_rules, clock=clock)
        assert ramp.promote("alice@ops").action == "promote"  # by hand to the first step
        assert ramp.promote("alice@ops").action == "promote"  # and on to the canary, on no data
        assert _values(rules) == (1.0, 0.1)
        write_cohorts(store, "chat", canary=1000, primary=1000, at=clock.tick(60), seed=3, canary_error_rate=0.25)
        outcome = ramp.advance()
        assert outcome.action == "rollback" and "canary (unpaired)" in outcome.message
        assert _values(rules) == (1.0, 0.0)
        assert [(m[0], m[3], m[4]) for m in _moves(store)] == [
            ("promote", "alice@ops", None),
            ("promote", "alice@ops", "INSUFFICIENT"),
            ("rollback", "rollout", "FAIL"),
        ]


def test_no_data_at_a_step_holds_and_writes_nothing(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    clock = FakeClock()
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, DEFAULT_PLAN, parse_rules, clock=clock)
        ramp.advance()
        before = rules.read_bytes()
        clock.tick(86400)
        outcome = ramp.advance()
        assert outcome.action == "hold" and outcome.verdict == "INSUFFICIENT"
        assert rules.read_bytes() == before and len(_moves(store)) == 1


def test_a_canary_step_needs_the_rules_own_canary_block(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES.replace("    canary: {fraction: 0.0, key: user}\n", ""))
    plan = parse_plan("steps:\n  - {phase: shadow, fraction: 1.0}\n  - {phase: canary, fraction: 0.1}\n", "p.yaml")
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, plan, parse_rules, clock=FakeClock())
        ramp.promote("bob")
        before = rules.read_bytes()
        with pytest.raises(Exception, match="has no `canary:` block"):
            ramp.promote("bob")
        assert rules.read_bytes() == before
        assert len(_moves(store)) == 1  # the refused move is not in the history either


@pytest.mark.parametrize(
    ("verdict", "pairs", "elapsed", "action"),
    [
        ("PASS", 500, 3600, "advance"),
        ("PASS", 499, 3600, "hold"),
        ("PASS", 500, 3599, "hold"),
        ("MARGINAL", 10_000, 86400, "hold"),
        ("INSUFFICIENT", 0, 86400, "hold"),
        ("FAIL", 3, 0, "rollback"),
    ],
)
def test_decide_moves_only_on_pass_with_enough_data_and_rolls_back_on_fail(
    verdict: str, pairs: int, elapsed: float, action: str
) -> None:
    assert decide(Step("shadow", 0.05, 3600, 500), StepVerdict(verdict, pairs), elapsed)[0] == action


def test_a_hold_says_when_the_rules_file_was_edited_by_hand_since_the_step(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, DEFAULT_PLAN, parse_rules, clock=FakeClock())
        ramp.advance()
        rules.write_text(rules.read_text().replace("sample_rate: 0.05", "sample_rate: 0.3"))
        outcome = ramp.advance()
    assert outcome.action == "hold"
    assert "the rules file was edited since (sample_rate is 0.3, not the step's 0.05)" in outcome.message


def test_a_store_from_before_rollouts_reports_no_rollout(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Store.open(path) as store:
        write_pairs(store, "chat", 200, FakeClock()(), seed=0)
        store.con.execute("DROP TABLE rollout_history")  # as a store written before the table existed
    with Store.open(path, read_only=True) as store:
        report = build_report(_reader(store))
    assert report.rollout == [] and len(report.candidates) == 1
