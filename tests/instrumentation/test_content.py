"""Message content only as OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT allows, redactable."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from otel_shadow import Scheduler
from otel_shadow import attributes as A

from .conftest import by_role

RULES = {"rules": [{"name": "r", "match": {"model": "gpt-4o"}, "candidates": [{"model": "gpt-4o-mini"}]}]}
SECRET = [{"role": "user", "content": "my email is ada@example.com"}]


def test_no_content_by_default(instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler) -> None:
    instrument(RULES)
    oai.chat.completions.create(model="gpt-4o", messages=SECRET)
    assert scheduler.flush(10)
    for span in spans.get_finished_spans():
        assert "ada@example.com" not in json.dumps(dict(span.attributes), default=str)
        assert A.GEN_AI_INPUT_MESSAGES not in span.attributes and not span.events


@pytest.mark.parametrize(
    "mode, on_span, as_event",
    [("SPAN_ONLY", True, False), ("true", True, False), ("EVENT_ONLY", False, True), ("SPAN_AND_EVENT", True, True)],
)
def test_capture_modes_with_redaction(
    monkeypatch: pytest.MonkeyPatch,
    instrument: Any,
    oai: openai.OpenAI,
    spans: Any,
    scheduler: Scheduler,
    mode: str,
    on_span: bool,
    as_event: bool,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    instrument(RULES, redact=lambda text: text.replace("ada@example.com", "[email]"))
    oai.chat.completions.create(model="gpt-4o", messages=SECRET)
    assert scheduler.flush(10)
    roles = by_role(spans)
    for span in (roles["primary"][0], roles["candidate"][0]):
        events = [e for e in span.events if e.name == "gen_ai.client.inference.operation.details"]
        assert (A.GEN_AI_INPUT_MESSAGES in span.attributes) is on_span
        assert bool(events) is as_event
        texts = json.dumps(dict(span.attributes), default=str) + json.dumps(
            [dict(e.attributes) for e in events], default=str
        )
        assert "[email]" in texts and "ada@example.com" not in texts
        if on_span:
            assert json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"].startswith(
                "Here is an answer"
            )
