"""OpenAI: every wrap point shadows to the candidates, and the user's call is never changed."""

from __future__ import annotations

import copy
from typing import Any

import openai
import pytest

from otel_shadow import Scheduler
from otel_shadow import attributes as A

from .conftest import MESSAGES, by_role

RULES = {
    "rules": [
        {
            "name": "to-mini",
            "match": {"provider": "openai", "model": "gpt-4o"},
            "candidates": [{"model": "gpt-4o-mini", "temperature": 0.1}],
        }
    ]
}


def test_create_returns_the_users_answer_and_shadows_the_candidate(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    baseline = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    instrument(RULES)
    request = {"model": "gpt-4o", "messages": copy.deepcopy(MESSAGES), "temperature": 0.7}
    before = copy.deepcopy(request)
    result = oai.chat.completions.create(**request)
    assert request == before  # the user's objects are never mutated
    assert result.choices[0].message.content == baseline.choices[0].message.content
    assert scheduler.flush(10)
    roles = by_role(spans)
    (primary,), (candidate,) = roles["primary"], roles["candidate"]
    p, c = primary.attributes, candidate.attributes
    assert primary.name == "chat gpt-4o" and primary.kind.name == "CLIENT"
    assert (p[A.GEN_AI_OPERATION_NAME], p[A.GEN_AI_PROVIDER_NAME], p[A.GEN_AI_REQUEST_MODEL]) == (
        "chat",
        "openai",
        "gpt-4o",
    )
    assert p[A.GEN_AI_REQUEST_TEMPERATURE] == 0.7 and p[A.GEN_AI_RESPONSE_MODEL] == "gpt-4o"
    assert p[A.GEN_AI_USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens
    assert p[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert p[A.SHADOW_EXPERIMENT] == "to-mini" and p[A.SHADOW_CANDIDATES_SCHEDULED] == 1
    assert c[A.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini" and c[A.GEN_AI_REQUEST_TEMPERATURE] == 0.1
    assert c[A.SHADOW_OUTCOME] == "ok" and c[A.SHADOW_OUTPUT_MATCH] is True  # same style: same answer
    assert c["shadow.config.model"] == "gpt-4o-mini" and c[A.SHADOW_PRIMARY_CONFIG_ID] == p[A.SHADOW_CONFIG_ID]
    assert candidate.context.trace_id == primary.context.trace_id
    assert candidate.parent.span_id == primary.context.span_id
    assert candidate.links[0].context.span_id == primary.context.span_id
    assert candidate.links[0].attributes[A.SHADOW_LINK] == "primary"


def test_streaming_passes_every_chunk_through_and_records_time_to_first_chunk(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    plain = [c.model_dump() for c in oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)]
    instrument(RULES)
    stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    seen = [c.model_dump() for c in stream]
    strip = lambda chunks: [{k: v for k, v in c.items() if k not in ("id", "created")} for c in chunks]  # noqa: E731
    assert strip(seen) == strip(plain)
    assert scheduler.flush(10)
    roles = by_role(spans)
    primary, candidate = roles["primary"][0], roles["candidate"][0]
    assert primary.attributes[A.SHADOW_TIME_TO_FIRST_CHUNK] > 0
    assert candidate.attributes[A.SHADOW_TIME_TO_FIRST_CHUNK] > 0  # the candidate's stream, consumed in the background
    assert candidate.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] > 0  # usage asked for on the candidate only
    assert primary.attributes[A.SHADOW_OUTPUT_HASH] == candidate.attributes[A.SHADOW_OUTPUT_HASH]


def test_a_stream_closed_early_is_recorded_as_cancelled(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    assert scheduler.flush(10)
    (primary,) = by_role(spans)["primary"]
    assert primary.attributes[A.SHADOW_OUTCOME] == "cancelled" and A.SHADOW_OUTPUT_HASH not in primary.attributes


def test_with_raw_response_keeps_headers_and_parse(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.parse().choices[0].message.content.startswith("Here is an answer")
    raw_stream = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "".join((c.choices[0].delta.content or "") for c in raw_stream.parse() if c.choices)
    assert scheduler.flush(10)
    assert len(by_role(spans)["candidate"]) == 2


def test_the_stream_helper_and_parse_are_each_shadowed_once(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    with oai.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content
    parsed = oai.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    assert parsed.choices[0].message.content
    assert scheduler.flush(10)
    roles = by_role(spans)
    assert len(roles["primary"]) == 2 and len(roles["candidate"]) == 2


def test_responses_api_plain_and_streamed(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    response = oai.responses.create(model="gpt-4o", input="What is shadow testing?", instructions="Be brief.")
    events = list(oai.responses.create(model="gpt-4o", input="Stream it", stream=True))
    assert response.output_text and events[-1].type == "response.completed"
    assert scheduler.flush(10)
    roles = by_role(spans)
    assert len(roles["primary"]) == 2
    assert sorted(s.attributes[A.SHADOW_OUTCOME] for s in roles["candidate"]) == ["ok", "ok"]
    assert all(s.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] > 0 for s in roles["candidate"])


async def test_async_create_and_stream(
    instrument: Any, aoai: openai.AsyncOpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    result = await aoai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await aoai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join([(c.choices[0].delta.content or "") async for c in stream if c.choices])
    assert text == result.choices[0].message.content
    assert await scheduler.aflush(10)
    roles = by_role(spans)
    assert len(roles["primary"]) == 2
    assert [s.attributes[A.SHADOW_OUTCOME] for s in roles["candidate"]] == ["ok", "ok"]


@pytest.mark.parametrize(
    "model, error",
    [("sim-rate-limited", "RateLimitError"), ("no-such-model", "NotFoundError"), ("sim-broken", "InternalServerError")],
)
def test_candidate_failures_never_reach_the_user_and_retries_are_limited(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler, llm_server: Any, model: str, error: str
) -> None:
    instrument(
        {"rules": [{"name": "bad", "match": {"model": "gpt-4o"}, "max_retries": 0, "candidates": [{"model": model}]}]}
    )
    before = sum(1 for r in llm_server.requests if r.get("model") == model)
    with openai.OpenAI(base_url=llm_server.openai_url, api_key="k", max_retries=5) as user:  # the user's own retries
        assert user.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
        assert scheduler.flush(10)
    (candidate,) = by_role(spans)["candidate"]
    assert candidate.attributes[A.SHADOW_OUTCOME] == "error" and candidate.attributes[A.ERROR_TYPE] == error
    assert sum(1 for r in llm_server.requests if r.get("model") == model) - before == 1  # no retries


def test_a_hanging_candidate_times_out(instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler) -> None:
    instrument(
        {
            "rules": [
                {"name": "slow", "match": {"model": "gpt-4o"}, "timeout": 0.3, "candidates": [{"model": "sim-slow"}]}
            ]
        }
    )
    assert oai.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    assert scheduler.flush(10)
    (candidate,) = by_role(spans)["candidate"]
    assert candidate.attributes[A.SHADOW_OUTCOME] in ("timeout", "error")  # the watchdog or the client timeout, first


def test_unmatched_calls_pass_through_untouched(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert scheduler.flush(10)
    assert spans.get_finished_spans() == ()


def test_uninstrument_restores_the_sdk(provider: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler) -> None:
    from openai.resources.chat.completions.completions import Completions

    from otel_shadow.instrumentation import OpenAIShadowInstrumentor

    original = Completions.create
    inst = OpenAIShadowInstrumentor()
    inst.instrument(rules=RULES, tracer_provider=provider, scheduler=scheduler)
    assert Completions.create is not original
    inst.uninstrument()
    assert Completions.create is original
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert spans.get_finished_spans() == ()


def test_no_shadow_of_a_shadow_and_suppression(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    instrument({"rules": [{"name": "loop", "match": {"provider": "openai"}, "candidates": [{"model": "gpt-4o"}]}]})
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with suppress_instrumentation():
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert scheduler.flush(10)
    roles = by_role(spans)
    assert len(roles["primary"]) == 1 and len(roles["candidate"]) == 1  # the candidate (gpt-4o) was not shadowed again
