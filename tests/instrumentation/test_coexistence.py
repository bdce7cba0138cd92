"""With OpenTelemetry's own GenAI OpenAI instrumentation active, in either wrapping order:
no duplicate, lost or mis-parented span, and the candidate never folded into the primary."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

from otel_shadow import Scheduler
from otel_shadow import attributes as A
from otel_shadow.instrumentation import OpenAIShadowInstrumentor

from .conftest import MESSAGES

RULES = {"rules": [{"name": "r", "match": {"provider": "openai", "model": "gpt-4o"}, "candidates": [{"model": "gpt-4o-mini"}]}]}


@pytest.mark.parametrize("order", ["theirs-first", "ours-first"])
@pytest.mark.parametrize("stream", [False, True])
def test_both_wrapping_orders(provider: Any, spans: Any, scheduler: Scheduler, oai: openai.OpenAI, order: str, stream: bool) -> None:
    theirs, ours = OpenAIInstrumentor(), OpenAIShadowInstrumentor()
    steps = [lambda: theirs.instrument(tracer_provider=provider), lambda: ours.instrument(rules=RULES, tracer_provider=provider, scheduler=scheduler)]
    for step in steps if order == "theirs-first" else reversed(steps):
        step()
    try:
        tracer = provider.get_tracer("app")
        with tracer.start_as_current_span("POST /ask") as request:
            result = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream)
            if stream:
                for _ in result:
                    pass
        assert scheduler.flush(10)
    finally:
        ours.uninstrument()
        theirs.uninstrument()
    finished = [s for s in spans.get_finished_spans() if s.name != "POST /ask"]
    genai = [s for s in finished if s.attributes.get(A.GEN_AI_OPERATION_NAME) == "chat"]
    primaries = [s for s in finished if s.attributes.get(A.SHADOW_ROLE) == "primary"]
    candidates = [s for s in finished if s.attributes.get(A.SHADOW_ROLE) == "candidate"]
    assert len(primaries) == 1 and len(candidates) == 1  # nothing lost
    # exactly one GenAI span per model call: one for the primary, one for the candidate
    assert sorted(s.attributes[A.GEN_AI_REQUEST_MODEL] for s in genai) == ["gpt-4o", "gpt-4o-mini"]
    (primary,), (candidate,) = primaries, candidates
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in finished} == {trace_id}
    if order == "ours-first":  # theirs is outermost: their span is the primary, annotated
        assert primary.attributes[A.GEN_AI_REQUEST_MODEL] == "gpt-4o"
        assert primary.parent.span_id == request.get_span_context().span_id
    else:  # ours is outermost: a thin shadow span, their GenAI span inside it
        assert primary.name == "shadow chat gpt-4o" and A.GEN_AI_OPERATION_NAME not in primary.attributes
        (inner,) = [s for s in genai if s.attributes[A.GEN_AI_REQUEST_MODEL] == "gpt-4o"]
        assert inner.parent.span_id == primary.context.span_id
    assert candidate.parent.span_id == primary.context.span_id
    assert candidate.links[0].context.span_id == primary.context.span_id
