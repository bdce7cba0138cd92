"""otel-shadow rollout / promote / rollback as people and pipelines run them (a real process each time)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from otel_shadow.instrumentation.rules import load_rules
from otel_shadow.store import Store

from .ramp_data import write_pairs
from .test_ramp import RULES

PLAN = """\
steps:
  - {phase: shadow, fraction: 0.1, min_time: 0, min_pairs: 200}
  - {phase: shadow, fraction: 1.0, min_time: 0, min_pairs: 200}
  - {phase: canary, fraction: 0.05, min_time: 10m, min_pairs: 500}
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_shadow", *args], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def _files(tmp_path: Path, plan: str = PLAN) -> tuple[list[str], Path, Path]:
    rules, plan_path, db = tmp_path / "shadow.yaml", tmp_path / "plan.yaml", tmp_path / "s.duckdb"
    rules.write_text(RULES)
    plan_path.write_text(plan)
    return ["--rules", str(rules), "--plan", str(plan_path), "--db", str(db)], rules, db


def test_rollout_promote_and_rollback_move_the_rules_file_and_the_report_shows_who(tmp_path: Path) -> None:
    args, rules, db = _files(tmp_path)
    started = run("rollout", *args)
    assert started.returncode == 0, started.stderr
    assert "start: now at shadow 10%" in started.stdout
    assert load_rules(rules).rules[0].sample_rate == 0.1
    with Store.open(db) as store:
        write_pairs(store, "chat", 2000, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1), seed=0)
    moved = run("rollout", *args, "--format", "json")
    assert moved.returncode == 0, moved.stderr
    outcome = json.loads(moved.stdout)
    assert outcome["action"] == "advance" and outcome["verdict"] == "PASS" and outcome["step_name"] == "shadow 100%"
    assert load_rules(rules).rules[0].sample_rate == 1.0
    assert run("promote", *args, "--actor", "alice@ops").returncode == 0
    assert load_rules(rules).rules[0].canary.fraction == 0.05  # type: ignore[union-attr]
    back = run("rollback", *args, "--actor", "bob@ops", "--reason", "complaints")
    assert back.returncode == 0, back.stderr
    rule = load_rules(rules).rules[0]
    assert (rule.sample_rate, rule.canary.fraction) == (0.1, 0.0)  # type: ignore[union-attr]
    report = run("report", "--db", str(db), "--format", "json")
    [state] = json.loads(report.stdout)["rollout"]
    assert state["status"] == "rolled_back"
    assert [(m["action"], m["actor"]) for m in state["history"]] == [
        ("start", "rollout"),
        ("advance", "rollout"),
        ("promote", "alice@ops"),
        ("rollback", "bob@ops"),
    ]
    assert state["history"][-1]["reason"] == "complaints"
    assert "ROLLED BACK" in run("report", "--db", str(db)).stdout


def test_a_broken_plan_is_refused_with_file_line_key_and_fix(tmp_path: Path) -> None:
    args, rules, db = _files(tmp_path, PLAN.replace("fraction: 1.0", "fraction: 1.5"))
    result = run("rollout", *args)
    assert result.returncode == 2
    assert "plan.yaml:3: steps[1].fraction: '1.5' is not a fraction" in result.stderr
    assert "at most 1" in result.stderr and "Traceback" not in result.stderr
    assert rules.read_text() == RULES and not db.exists()


def test_a_rules_file_that_does_not_parse_is_not_edited(tmp_path: Path) -> None:
    args, rules, db = _files(tmp_path)
    broken = RULES.replace("sample_rate: 0.01", "sample_rate: 7")
    rules.write_text(broken)
    result = run("rollout", *args)
    assert result.returncode == 2
    assert "shadow.yaml:5: rules[0].sample_rate" in result.stderr
    assert rules.read_text() == broken


def test_a_held_database_is_refused_with_the_fix_and_nothing_moves(tmp_path: Path) -> None:
    args, rules, db = _files(tmp_path)
    with Store.open(db):  # this process is the writer, as an application's exporter would be
        result = run("rollout", *args)
    assert result.returncode == 2
    assert "needs the database to itself" in result.stderr and "while no other process holds it" in result.stderr
    assert rules.read_text() == RULES


def test_rollout_watch_keeps_moving_until_the_plan_is_complete(tmp_path: Path) -> None:
    plan = "steps:\n  - {phase: shadow, fraction: 0.5, min_time: 0, min_pairs: 200}\n  - {phase: shadow, fraction: 1.0, min_time: 0, min_pairs: 200}\n"
    args, rules, db = _files(tmp_path, plan)
    with Store.open(db) as store:  # pairs stamped an hour ahead: every step's window holds them
        write_pairs(store, "chat", 2000, dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1), seed=0)
    result = run("rollout", *args, "--watch", "--interval", "0")
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[1].strip() for line in result.stdout.splitlines()] == ["start", "advance", "complete"]
    assert load_rules(rules).rules[0].sample_rate == 1.0
