"""Serving the canary: a sticky fraction of users answered by the rule's first candidate (role canary).

The real openai/anthropic clients over HTTP against the local model server, which names the model
that answered in the response (``response.model``); gpt-5-beta answers "In short: …", gpt-4o
"Here is an answer about …", so the served config shows in the text too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow import Scheduler
from otel_shadow.analysis import build_report
from otel_shadow.core import sampling
from otel_shadow.core.canary import bucket, in_canary, key_value
from otel_shadow.errors import ConfigError
from otel_shadow.instrumentation import parse_rules
from otel_shadow.instrumentation.rules import shared_source
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter
from otel_shadow.testing import LLMServer
from otel_shadow.testing.llm_server import SimulatedModel

from .conftest import MESSAGES as _MESSAGES
from .conftest import by_role

MESSAGES: Any = _MESSAGES  # the SDKs' TypedDicts: the plain dicts a user passes are typed loosely here

USERS = [f"user-{i}" for i in range(60)]


def _rule(fraction: float, key: str = "user", **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "chat-canary",
        "match": {"provider": "openai", "model": "gpt-4o"},
        "sample_rate": 0.0,  # no shadow pairs: what each user is served is the only signal
        "candidates": [{"model": "gpt-5-beta"}],
        "canary": {"fraction": fraction, "key": key},
    }
    rule.update(extra)
    return {"rules": [rule]}


def _ask(client: openai.OpenAI, **kwargs: Any) -> str:
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **kwargs)
    return str(response.model)


def _served_candidate(client: openai.OpenAI, users: list[str]) -> set[str]:
    return {user for user in users if _ask(client, user=user) == "gpt-5-beta"}


# --- the decision (pure) -----------------------------------------------------------------------------
def test_the_cohort_is_sticky_monotone_and_near_the_fraction() -> None:
    ids = [f"u{i}" for i in range(20_000)]
    at_5 = {u for u in ids if in_canary("exp", 0.05, "user", {"user": u})}
    at_25 = {u for u in ids if in_canary("exp", 0.25, "user", {"user": u})}
    assert at_5 <= at_25  # raising the fraction keeps every canary user in
    assert 800 < len(at_5) < 1200 and 4600 < len(at_25) < 5400  # ~5% and ~25% of 20,000
    assert at_5 == {u for u in ids if in_canary("exp", 0.05, "user", {"user": u})}  # sticky
    other = {u for u in ids if in_canary("other-exp", 0.05, "user", {"user": u})}
    assert len(other & at_5) < 200  # another experiment draws its own 5%
    assert all(0.0 <= bucket("exp", u) < 1.0 for u in ids[:1000])


def test_the_key_comes_from_user_metadata_a_request_field_or_baggage() -> None:
    assert key_value("user", {"user": "a"}) == "a"
    assert key_value("user", {"metadata": {"user_id": "b"}}) == "b"  # Anthropic
    assert key_value("request:metadata.tenant", {"metadata": {"tenant": 7}}) == "7"
    token = otel_context.attach(baggage.set_baggage("user.id", "c"))
    try:
        assert key_value("baggage:user.id", {}) == "c"
    finally:
        otel_context.detach(token)
    assert key_value("baggage:user.id", {}) is None


@pytest.mark.parametrize("value", [None, "", True, {"id": 1}, ["a"], "x" * 2000])
def test_no_usable_key_is_never_in_the_canary(value: Any) -> None:
    assert not in_canary("exp", 1.0, "user", {"user": value})


# --- zero-code: served through the real SDKs ------------------------------------------------------
def test_fraction_zero_never_serves_the_candidate(instrument: Any, oai: openai.OpenAI, spans: Any) -> None:
    instrument(_rule(0.0))
    assert _served_candidate(oai, USERS[:20]) == set()
    roles = by_role(spans)
    assert set(roles) == {"primary"} and len(roles["primary"]) == 20


def test_fraction_one_answers_every_keyed_user_from_the_first_candidate(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(_rule(1.0, sample_rate=1.0, candidates=[{"model": "gpt-5-beta"}, {"model": "gpt-4o-mini"}]))
    response = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, user="u-1")
    assert response.model == "gpt-5-beta"
    assert (response.choices[0].message.content or "").startswith("In short:")
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # no key: a primary, shadowed
    assert scheduler.flush(10)
    roles = by_role(spans)
    (canary,) = roles["canary"]
    (primary,) = roles["primary"]
    assert canary.attributes["gen_ai.request.model"] == "gpt-5-beta"
    assert canary.attributes["gen_ai.response.model"] == "gpt-5-beta"
    assert canary.attributes["shadow.experiment"] == "chat-canary"
    assert canary.attributes["shadow.outcome"] == "ok"
    # the candidate's config id, as its shadow run has it; the config it replaced beside it
    first = [s for s in roles["candidate"] if s.attributes["gen_ai.request.model"] == "gpt-5-beta"]
    assert canary.attributes["shadow.config.id"] == first[0].attributes["shadow.config.id"]
    assert canary.attributes["shadow.primary.config.id"] == primary.attributes["shadow.config.id"]
    # it is not a pair: the only candidates ran for the primary call
    assert len(roles["candidate"]) == 2
    assert all(link.context.span_id == primary.context.span_id for s in roles["candidate"] for link in s.links)


def test_a_call_without_the_key_is_answered_by_the_primary(instrument: Any, oai: openai.OpenAI, spans: Any) -> None:
    instrument(_rule(1.0))
    assert _ask(oai) == "gpt-4o"
    assert set(by_role(spans)) == {"primary"}


def test_a_rule_without_a_canary_block_never_serves_a_candidate(
    instrument: Any, oai: openai.OpenAI, spans: Any
) -> None:
    rules = _rule(1.0)
    del rules["rules"][0]["canary"]
    instrument(rules)
    assert _served_candidate(oai, USERS[:10]) == set()


def test_the_cohort_is_sticky_and_a_reloaded_higher_fraction_keeps_it(
    tmp_path: Path, instrument: Any, oai: openai.OpenAI, spans: Any
) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(_yaml(0.3))
    instrument(str(path))
    first = _served_candidate(oai, USERS)
    assert first == {u for u in USERS if in_canary("chat-canary", 0.3, "user", {"user": u})}
    assert 0 < len(first) < len(USERS)
    assert _served_candidate(oai, USERS) == first  # the same users, call after call
    path.write_text(_yaml(0.7))  # what `otel-shadow rollout` does (it writes, then renames)
    shared_source(path).check()  # the watcher would within a second; here, now
    later = _served_candidate(oai, USERS)
    assert first < later  # every canary user stays in, more join
    assert later == {u for u in USERS if in_canary("chat-canary", 0.7, "user", {"user": u})}
    roles = by_role(spans)
    assert len(roles["canary"]) == 2 * len(first) + len(later)


def _yaml(fraction: float) -> str:
    return f"""rules:
  - name: chat-canary
    match: {{provider: openai, model: gpt-4o}}
    sample_rate: 0
    candidates: [{{model: gpt-5-beta}}]
    canary: {{fraction: {fraction}, key: user}}
"""


def test_the_kill_switch_serves_every_user_the_primary(
    instrument: Any, oai: openai.OpenAI, spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    instrument(_rule(1.0))
    monkeypatch.setenv("OTEL_SHADOW_DISABLED", "true")
    sampling._reset_kill_switch_cache()
    assert _served_candidate(oai, USERS[:5]) == set()
    monkeypatch.setenv("OTEL_SHADOW_DISABLED", "false")
    sampling._reset_kill_switch_cache()
    assert _served_candidate(oai, USERS[:5]) == set(USERS[:5])


def test_a_baggage_key_from_the_callers_context(instrument: Any, oai: openai.OpenAI, spans: Any) -> None:
    instrument(_rule(1.0, key="baggage:user.id"))
    assert _ask(oai, user="ignored") == "gpt-4o"  # the key is the baggage entry, absent here
    token = otel_context.attach(baggage.set_baggage("user.id", "u-42"))
    try:
        assert _ask(oai) == "gpt-5-beta"
    finally:
        otel_context.detach(token)
    assert [s.attributes["shadow.role"] for s in spans.get_finished_spans()] == ["primary", "canary"]


def test_a_canary_error_reaches_the_caller_as_the_primarys_would(
    instrument: Any, oai: openai.OpenAI, spans: Any
) -> None:
    instrument(_rule(1.0, candidates=[{"model": "sim-broken"}]))
    with pytest.raises(openai.InternalServerError):
        _ask(oai, user="u-1")
    (canary,) = by_role(spans)["canary"]
    assert canary.attributes["shadow.outcome"] == "error"
    assert canary.attributes["error.type"] == "InternalServerError"


async def test_an_async_stream_is_served_by_the_candidate(
    instrument: Any, aoai: openai.AsyncOpenAI, spans: Any
) -> None:
    instrument(_rule(1.0))
    stream: Any = await aoai.chat.completions.create(model="gpt-4o", messages=MESSAGES, user="u-1", stream=True)
    models, text = set(), ""
    async for chunk in stream:
        models.add(chunk.model)
        text += "".join(c.delta.content or "" for c in chunk.choices)
    assert models == {"gpt-5-beta"} and text.startswith("In short:")
    (canary,) = by_role(spans)["canary"]
    assert canary.attributes["shadow.outcome"] == "ok"
    assert canary.attributes["shadow.output.length"] == len(text)


@pytest.fixture
def other_server() -> Iterator[LLMServer]:
    with LLMServer(models={"only-there": SimulatedModel(latency_ms=1, style="terse")}) as server:
        yield server


def test_a_candidate_on_another_endpoint_answers_from_there(
    instrument: Any, oai: openai.OpenAI, spans: Any, other_server: LLMServer
) -> None:
    instrument(_rule(1.0, candidates=[{"model": "only-there", "base_url": other_server.openai_url}]))
    assert _ask(oai, user="u-1") == "only-there"  # the user's server does not know this model (a 404)
    (canary,) = by_role(spans)["canary"]
    assert canary.attributes["server.port"] == other_server.port


def test_anthropic_users_are_keyed_by_metadata_user_id(
    instrument: Any, claude: anthropic.Anthropic, spans: Any
) -> None:
    instrument(_claude_rule())
    keyed = claude.messages.create(
        model="claude-sonnet", max_tokens=64, messages=MESSAGES[1:], metadata={"user_id": "u-7"}
    )
    plain = claude.messages.create(model="claude-sonnet", max_tokens=64, messages=MESSAGES[1:])
    assert (keyed.model, plain.model) == ("claude-haiku", "claude-sonnet")
    assert [s.attributes["shadow.role"] for s in spans.get_finished_spans()] == ["canary", "primary"]


def test_the_anthropic_stream_helper_is_served_by_the_candidate(
    instrument: Any, claude: anthropic.Anthropic, spans: Any
) -> None:
    instrument(_claude_rule())
    with claude.messages.stream(
        model="claude-sonnet", max_tokens=64, messages=MESSAGES[1:], metadata={"user_id": "u-7"}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.model == "claude-haiku"
    (canary,) = by_role(spans)["canary"]
    assert canary.attributes["gen_ai.request.model"] == "claude-haiku"
    assert canary.attributes["shadow.outcome"] == "ok"
    assert canary.attributes["shadow.output.length"] == len(text)


def _claude_rule() -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "claude-canary",
                "match": {"provider": "anthropic", "model": "claude-sonnet"},
                "sample_rate": 0,
                "candidates": [{"model": "claude-haiku"}],
                "canary": {"fraction": 1.0, "key": "user"},
            }
        ]
    }


def test_a_canary_served_by_another_provider_is_refused() -> None:
    text = """rules:
  - name: x
    match: {provider: openai}
    candidates: [{provider: anthropic, model: claude-haiku}]
    canary: {fraction: 0.05, key: user}
"""
    with pytest.raises(
        ConfigError, match=r"shadow.yaml:\d+: rules\[0\]: .*canary: candidates\[0\] is on provider 'anthropic'"
    ):
        parse_rules(text, "shadow.yaml")


# --- the analysis sees the cohorts from real spans ----------------------------------------------------
def test_the_report_compares_the_served_cohorts_unpaired(
    tmp_path: Path, instrument: Any, oai: openai.OpenAI, provider: TracerProvider
) -> None:
    exporter = DuckDBSpanExporter(str(tmp_path / "spans.duckdb"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(_rule(0.5))
    canary_users = [u for u in USERS if in_canary("chat-canary", 0.5, "user", {"user": u})]
    rest = [u for u in USERS if u not in canary_users]
    # a canary call first: the primary cohort is every primary call from the first canary call on
    served = _served_candidate(oai, canary_users[:1] + rest + canary_users[1:])
    assert served == set(canary_users)
    exporter.shutdown()
    with Store.open(tmp_path / "spans.duckdb") as store:

        def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            result = store.query(sql)
            return result.columns, result.rows

        report = build_report(query)
    (cohorts,) = report.canary
    assert cohorts.experiment == "chat-canary"
    assert cohorts.metrics["canary_calls"] == len(canary_users)
    assert cohorts.metrics["primary_calls"] == len(rest)
    assert cohorts.to_dict()["statistics"] == "unpaired"
    assert report.candidates == []  # canary calls are no shadow pairs
