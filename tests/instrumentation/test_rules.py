"""The rules file: clear errors with line and field, hot reload, budgets, caps, sampling, overrides."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from otel_shadow import ConfigError, Scheduler
from otel_shadow import attributes as A
from otel_shadow.instrumentation import RulesSource, load_rules, parse_rules

from .conftest import MESSAGES, by_role

GOOD = """\
rules:
  - name: chat-to-mini
    match: {provider: openai, model: "gpt-4o*"}
    candidates:
      - model: gpt-4o-mini
"""


def test_errors_name_the_line_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "shadow.yaml"
    bad.write_text(
        "rules:\n  - name: r\n    sample_rate: 1.5\n    candidates:\n      - model: m\n        temperture: 0.3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_rules(bad)
    message = str(info.value)
    assert f"{bad}:3: rules[0].sample_rate: Input should be less than or equal to 1 (value 1.5)" in message
    assert f"{bad}:6: rules[0].candidates[0].temperture: unknown field" in message
    with pytest.raises(ConfigError, match=r"shadow\.yaml:\d+: not valid YAML"):
        parse_rules("rules:\n  - name: [\n", "shadow.yaml")
    with pytest.raises(ConfigError, match=r"candidates: List should have at least 1 item"):
        parse_rules("rules:\n  - name: empty\n    candidates: []\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_rules(tmp_path / "missing.yaml")


def test_edits_take_effect_and_a_broken_edit_keeps_the_last_good_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(GOOD)
    source = RulesSource(path, check_interval_s=0)  # no watcher thread: check() is called here
    assert source.rules.rules[0].candidates[0].model == "gpt-4o-mini"
    path.write_text(GOOD.replace("gpt-4o-mini", "gpt-5-beta"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert source.rules.rules[0].candidates[0].model == "gpt-4o-mini"  # reading never reloads
    assert source.check()
    assert source.rules.rules[0].candidates[0].model == "gpt-5-beta"
    path.write_text(GOOD.replace("model: gpt-4o-mini", "model: [broken"))
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert not source.check()
    assert source.rules.rules[0].candidates[0].model == "gpt-5-beta"
    assert source.last_error is not None and "keeping the last good rules" in caplog.text


def test_the_budget_stops_candidates_and_counts_them(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(
        {
            "rules": [
                {
                    "name": "b",
                    "match": {"model": "gpt-4o"},
                    "budget": {"tokens_per_hour": 20},
                    "candidates": [{"model": "gpt-4o-mini"}],
                }
            ]
        }
    )
    for _ in range(4):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert scheduler.flush(10)
    primaries = by_role(spans)["primary"]
    scheduled = [p.attributes[A.SHADOW_CANDIDATES_SCHEDULED] for p in primaries]
    assert scheduled[0] == 1 and scheduled[-1] == 0  # one candidate call spends ~15 tokens: the hour's 20 are soon gone
    assert primaries[-1].attributes[A.SHADOW_DROP_REASONS] == "budget"


def test_a_cost_budget_uses_the_prices(instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler) -> None:
    instrument(
        {
            "rules": [
                {
                    "name": "c",
                    "match": {"model": "gpt-4o"},
                    "candidates": [{"model": "gpt-4o-mini"}],
                    "budget": {"cost_per_hour": 0.00001, "prices": {"gpt-4o-mini": {"input": 1000, "output": 1000}}},
                }
            ]
        }
    )
    for _ in range(3):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert scheduler.flush(10)
    assert [p.attributes[A.SHADOW_CANDIDATES_SCHEDULED] for p in by_role(spans)["primary"]] == [1, 0, 0]


def test_the_concurrency_cap(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler, llm_server: Any
) -> None:
    instrument(
        {
            "rules": [
                {
                    "name": "cap",
                    "match": {"model": "gpt-4o"},
                    "max_concurrency": 1,
                    "timeout": 10,
                    "candidates": [{"model": "sim-slow"}],
                }
            ]
        }
    )
    llm_server.set_model("sim-slow", latency_ms=500)
    try:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert scheduler.flush(10)
    finally:
        llm_server.set_model("sim-slow", latency_ms=3000)
    reasons = [p.attributes.get(A.SHADOW_DROP_REASONS) for p in by_role(spans)["primary"]]
    assert reasons == [None, "queue_full"]


def test_sampling_and_overrides(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler, llm_server: Any
) -> None:
    instrument(
        {
            "rules": [
                {
                    "name": "never",
                    "match": {"model": "gpt-4o", "attributes": {"user": "u-1"}},
                    "sample_rate": 0,
                    "candidates": [{"model": "x"}],
                },
                {
                    "name": "rewrite",
                    "match": {"model": "gpt-4o"},
                    "candidates": [
                        {
                            "model": "gpt-4o-mini",
                            "max_tokens": 77,
                            "system_prompt": "New system prompt.",
                            "extra": {"seed": 7},
                        }
                    ],
                },
            ]
        }
    )
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, user="u-1")
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=50)
    assert scheduler.flush(10)
    first, second = by_role(spans)["primary"]
    assert first.attributes[A.SHADOW_EXPERIMENT] == "never" and first.attributes[A.SHADOW_DROP_REASONS] == "sampling"
    sent = [r for r in llm_server.requests if r.get("model") == "gpt-4o-mini" and r.get("seed") == 7][-1]
    assert sent["max_completion_tokens"] == 77
    assert sent["messages"][0] == {"role": "system", "content": "New system prompt."}
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_rules_compare_outputs_and_run_replicates_for_the_noise_floor(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(
        {
            "rules": [
                {
                    "name": "floor",
                    "match": {"model": "gpt-4o"},
                    "replicate_rate": 1.0,
                    "metrics": ["normalized_match", "similarity"],
                    "candidates": [{"model": "gpt-5-beta"}],
                }
            ]
        }
    )
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert scheduler.flush(10)
    roles = by_role(spans)
    (primary,) = roles["primary"]
    (candidate,) = roles["candidate"]
    (replicate,) = roles["replicate"]
    assert primary.attributes[A.SHADOW_CANDIDATES_SCHEDULED] == 1  # the replicate is not a candidate
    assert primary.attributes[A.SHADOW_REPLICATES_SCHEDULED] == 1
    assert replicate.attributes[A.SHADOW_CONFIG_ID] == primary.attributes[A.SHADOW_CONFIG_ID]
    assert replicate.attributes["gen_ai.request.model"] == "gpt-4o"
    assert (
        replicate.attributes[A.SHADOW_METRIC_PREFIX + "normalized_match"] is True
    )  # the simulated model is deterministic
    assert replicate.attributes[A.SHADOW_METRIC_PREFIX + "similarity"] == 1.0
    assert candidate.attributes[A.SHADOW_METRIC_PREFIX + "similarity"] < 1.0  # gpt-5-beta answers tersely
    assert A.SHADOW_METRIC_PREFIX + "json_valid" not in candidate.attributes  # only the rule's metrics


def test_an_unknown_metric_in_a_rules_file_names_the_line() -> None:
    text = "rules:\n  - name: r\n    metrics: [similarty]\n    candidates: [{model: m}]\n"
    with pytest.raises(ConfigError, match=r"shadow\.yaml:3: rules\[0\]\.metrics: .*unknown metric 'similarty'"):
        parse_rules(text, "shadow.yaml")


def test_a_cost_budget_falls_back_to_the_shared_price_table() -> None:
    from otel_shadow.instrumentation.rules import Budget

    budget = Budget(cost_per_hour=1.0, prices={"gpt-4o-mini": {"input": 1.0, "output": 1.0}})
    assert budget.cost("gpt-4o-mini", 1_000_000, 0) == 1.0  # the rule's own price first
    assert budget.cost("gpt-4o-2024-08-06", 1_000_000, 1_000_000) == pytest.approx(2.50 + 10.00)  # shipped list price
    assert budget.cost("no-such-model", 1_000_000, 0) == 0.0


def test_a_bad_prices_file_leaves_budgets_on_the_shipped_prices_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from otel_shadow.instrumentation import rules as R

    bad = tmp_path / "prices.yaml"
    bad.write_text("gpt-4o: 2.5\n")
    monkeypatch.setenv("OTEL_SHADOW_PRICES", str(bad))
    monkeypatch.setattr(R, "_PRICES", [])  # the table is read once per process: read it again here
    budget = R.Budget(cost_per_hour=1.0)
    assert budget.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.50)  # the shipped list price
    assert budget.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.50)
    warnings = [r.getMessage() for r in caplog.records if "using the shipped prices" in r.getMessage()]
    assert len(warnings) == 1 and "prices.yaml" in warnings[0]
