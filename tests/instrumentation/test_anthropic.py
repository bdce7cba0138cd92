"""Anthropic: messages.create (plain, streamed), the messages.stream helper, async; cross-provider candidates."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

from otel_shadow import Scheduler
from otel_shadow import attributes as A

from .conftest import by_role

RULES = {
    "rules": [
        {
            "name": "to-haiku",
            "match": {"provider": "anthropic", "model": "claude-sonnet"},
            "candidates": [{"model": "claude-haiku"}],
        }
    ]
}
ASK = {
    "model": "claude-sonnet",
    "max_tokens": 200,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "What is shadow testing?"}],
}


def test_create_plain_and_streamed(
    instrument: Any, claude: anthropic.Anthropic, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    message = claude.messages.create(**ASK)
    events = list(claude.messages.create(**ASK, stream=True))
    assert message.content[0].text and events[-1].type == "message_stop"
    assert scheduler.flush(10)
    roles = by_role(spans)
    plain, streamed = roles["primary"]
    assert plain.attributes[A.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert plain.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens
    assert (
        streamed.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] > 0 and streamed.attributes[A.SHADOW_TIME_TO_FIRST_CHUNK] > 0
    )
    assert [c.attributes[A.GEN_AI_REQUEST_MODEL] for c in roles["candidate"]] == ["claude-haiku"] * 2
    assert all(c.attributes[A.SHADOW_OUTCOME] == "ok" for c in roles["candidate"])
    # claude-haiku answers at twice the length in the simulated server: outputs differ
    assert all(c.attributes[A.SHADOW_OUTPUT_MATCH] is False for c in roles["candidate"])


def test_the_stream_helper(instrument: Any, claude: anthropic.Anthropic, spans: Any, scheduler: Scheduler) -> None:
    instrument(RULES)
    with claude.messages.stream(**ASK) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Here is an answer")
    assert scheduler.flush(10)
    (primary,) = by_role(spans)["primary"]
    assert primary.attributes[A.SHADOW_OUTCOME] == "ok"
    assert primary.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert by_role(spans)["candidate"][0].attributes[A.SHADOW_OUTCOME] == "ok"


async def test_async_create_and_stream_helper(
    instrument: Any, aclaude: anthropic.AsyncAnthropic, spans: Any, scheduler: Scheduler
) -> None:
    instrument(RULES)
    message = await aclaude.messages.create(**ASK)
    async with aclaude.messages.stream(**ASK) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == message.content[0].text
    assert await scheduler.aflush(10)
    assert [c.attributes[A.SHADOW_OUTCOME] for c in by_role(spans)["candidate"]] == ["ok", "ok"]


def test_a_candidate_on_the_other_provider(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler, llm_server: Any
) -> None:
    instrument(
        {
            "rules": [
                {
                    "name": "cross",
                    "match": {"provider": "openai", "model": "gpt-4o"},
                    "candidates": [
                        {
                            "provider": "anthropic",
                            "model": "claude-sonnet",
                            "base_url": llm_server.anthropic_url,
                            "max_tokens": 300,
                        }
                    ],
                }
            ]
        }
    )
    oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    )
    assert scheduler.flush(10)
    (candidate,) = by_role(spans)["candidate"]
    assert (
        candidate.attributes[A.GEN_AI_PROVIDER_NAME] == "anthropic" and candidate.attributes[A.SHADOW_OUTCOME] == "ok"
    )
    sent = [r for r in llm_server.requests if r["path"] == "/v1/messages" and r.get("model") == "claude-sonnet"][-1]
    assert (
        sent["system"] == "Be brief."
        and sent["max_tokens"] == 300
        and sent["messages"] == [{"role": "user", "content": "hi"}]
    )
