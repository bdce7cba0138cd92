"""Zero-code instrumentation without a redact= hook applies OTEL_SHADOW_REDACT_RULES: the rules
file the collector applies at ingest too (docs/retention.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from otel_shadow import Scheduler
from otel_shadow import attributes as A

from .conftest import by_role

RULES = {"rules": [{"name": "r", "match": {"model": "gpt-4o"}, "candidates": [{"model": "gpt-4o-mini"}]}]}
SECRET: Any = [{"role": "user", "content": "my email is ada@example.com, customer CUST-123456"}]


def test_the_rules_file_redacts_captured_messages_on_every_span(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    instrument: Any,
    oai: openai.OpenAI,
    spans: Any,
    scheduler: Scheduler,
) -> None:
    rules = tmp_path / "redact.yaml"
    rules.write_text("rules:\n  - builtin: email\n  - pattern: 'CUST-[0-9]{6}'\n    replace: '[customer]'\n")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("OTEL_SHADOW_REDACT_RULES", str(rules))
    instrument(RULES)
    oai.chat.completions.create(model="gpt-4o", messages=SECRET)
    assert scheduler.flush(10)
    roles = by_role(spans)
    for span in (roles["primary"][0], roles["candidate"][0]):
        messages = json.loads(span.attributes[A.GEN_AI_INPUT_MESSAGES])
        assert messages[0]["parts"][0]["content"] == "my email is [email], customer [customer]"
    assert "ada@example.com" not in json.dumps([dict(s.attributes) for s in spans.get_finished_spans()], default=str)
