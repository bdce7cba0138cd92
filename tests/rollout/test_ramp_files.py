"""The two files a rollout reads and writes: the plan (validated) and the rules file (a targeted, checked, atomic edit)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from otel_shadow.errors import ConfigError
from otel_shadow.instrumentation.rules import parse_rules
from otel_shadow.rollout.plan import DEFAULT_PLAN, load_plan, parse_plan
from otel_shadow.rollout.ramp import Ramp
from otel_shadow.rollout.rules_file import checked_edit, edit_rule, write_atomically
from otel_shadow.store import Store

from .ramp_data import FakeClock
from .test_ramp import RULES


def test_the_default_plan_is_the_seeds_path() -> None:
    assert [s.describe() for s in DEFAULT_PLAN.steps] == [
        "shadow 5%", "shadow 25%", "shadow 100%", "canary 5%", "canary 25%", "canary 50%", "canary 100%",
    ]  # fmt: skip
    assert load_plan(None) is DEFAULT_PLAN


def test_a_plan_reads_durations_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "steps:\n  - {phase: shadow, fraction: 0.1, min_time: 30m, min_pairs: 50}\n  - {phase: canary, fraction: 1}\n"
    )
    plan = load_plan(path)
    assert (plan.steps[0].min_time_s, plan.steps[0].min_pairs) == (1800.0, 50)
    assert (plan.steps[1].min_time_s, plan.steps[1].min_pairs) == (3600.0, 500)  # the defaults
    assert plan.shadow_fraction_at(1) == 0.1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - {phase: shadow, fraction: 1.5}\n", "p.yaml:2: steps[0].fraction: '1.5' is not a fraction; use a number above 0"),
        ("steps:\n  - {phase: shadow, fraction: 0}\n", "steps[0].fraction: '0' is not a fraction"),
        ("steps:\n  - {phase: shaddow, fraction: 0.1}\n", "p.yaml:2: steps[0].phase: 'shaddow' is not a phase; use shadow or canary"),
        ("steps:\n  - {phase: shadow, fraction: 0.1, min_time: soon}\n", "steps[0].min_time: 'soon' is not a duration; use seconds (600) or 30m"),
        ("steps:\n  - {phase: shadow, fraction: 0.1, min_pairs: -1}\n", "steps[0].min_pairs: '-1' must be a whole number"),
        ("steps:\n  - {phase: shadow, fraction: 0.1, pairs: 10}\n", "steps[0].pairs: unknown key"),
        ("steps:\n  - {phase: canary, fraction: 0.1}\n  - {phase: shadow, fraction: 0.5}\n",
         "p.yaml:3: steps[1].phase: a shadow step after a canary step; put every shadow step first"),
        ("steps:\n  - {phase: shadow, fraction: 0.5}\n  - {phase: shadow, fraction: 0.1}\n",
         "steps[1].fraction: 0.1 is below the step before (0.5)"),
        ("steps: []\n", "p.yaml:1: steps: must be a non-empty list"),
        ("stages:\n  - {phase: shadow, fraction: 0.5}\n", "a plan is a mapping with a `steps:` list"),
        ("s: &a {phase: shadow, fraction: 0.5}\nsteps: [*a]\n", "p.yaml:2: YAML aliases (*a) are not allowed"),
    ],
)  # fmt: skip
def test_a_broken_plan_is_refused_naming_line_key_value_and_fix(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_plan(text, "p.yaml")
    assert message in str(caught.value)


def test_the_edit_changes_only_the_number_and_keeps_comments() -> None:
    edited = edit_rule(RULES, "f", "chat", sample_rate=0.25, canary_fraction=0.5)
    changed = [(a, b) for a, b in zip(RULES.splitlines(), edited.splitlines()) if a != b]
    assert changed == [
        ("    sample_rate: 0.01   # tiny to begin with", "    sample_rate: 0.25   # tiny to begin with"),
        ("    canary: {fraction: 0.0, key: user}", "    canary: {fraction: 0.5, key: user}"),
    ]


def test_a_missing_sample_rate_is_added_below_the_rule_name() -> None:
    text = "rules:\n  - name: chat  # the main one\n    candidates: [{model: m}]\n  - {name: other, candidates: [{model: m}]}\n"
    block = edit_rule(text, "f", "chat", sample_rate=0.05)
    assert block.splitlines()[1:3] == ["  - name: chat  # the main one", "    sample_rate: 0.05"]
    flow = edit_rule(text, "f", "other", sample_rate=0.05)
    assert "  - {sample_rate: 0.05, name: other, candidates: [{model: m}]}" in flow
    assert parse_rules(block).rules[0].sample_rate == parse_rules(flow).rules[1].sample_rate == 0.05


def test_an_edit_the_parser_would_read_differently_is_refused() -> None:
    """A key given twice: the parser reads the last one, so setting the first would change nothing."""
    twice = RULES.replace("    candidates:\n", "    sample_rate: 0.5\n    candidates:\n")
    parse_rules(twice)  # valid as it is
    with pytest.raises(ConfigError, match="did not land where intended; f is unchanged"):
        checked_edit(twice, "f", "chat", parse_rules, sample_rate=0.25)


def test_an_edit_that_would_not_parse_leaves_the_file_and_the_history_unchanged(tmp_path: Path) -> None:
    rules = tmp_path / "shadow.yaml"
    rules.write_text(RULES)
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, DEFAULT_PLAN, parse_rules, clock=FakeClock())
        broken = RULES.replace("key: user", "key: cookie")  # edited by hand since the rollout began
        rules.write_text(broken)
        with pytest.raises(ConfigError, match=r"refused: .*shadow.yaml does not parse now.*canary.key"):
            ramp.advance()
        assert rules.read_text() == broken
        assert store.query("SELECT count(*) FROM rollout_history").rows == [(0,)]


def test_the_atomic_write_keeps_the_mode_and_replaces_a_symlinks_target(tmp_path: Path) -> None:
    real = tmp_path / "config" / "shadow.yaml"
    real.parent.mkdir()
    real.write_text(RULES)
    os.chmod(real, 0o640)
    link = tmp_path / "shadow.yaml"
    link.symlink_to(real)
    write_atomically(link, "rules: []\n")
    assert link.is_symlink() and real.read_text() == "rules: []\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert [p.name for p in real.parent.iterdir()] == ["shadow.yaml"]  # no temporary file left


def test_the_canary_block_is_validated_with_line_and_fix() -> None:
    bad = RULES.replace("key: user", "key: cookie")
    with pytest.raises(ConfigError, match=r'<rules>:6: rules\[0\].canary.key: .*must be "user", "baggage:<name>"'):
        parse_rules(bad)
    with pytest.raises(ConfigError, match=r"rules\[0\].canary.fraction: Input should be less than or equal to 1"):
        parse_rules(RULES.replace("fraction: 0.0", "fraction: 2"))
    rule = parse_rules(RULES.replace("key: user", 'key: "request:metadata.user_id"')).rules[0]
    assert rule.canary is not None and rule.canary.key == "request:metadata.user_id"
