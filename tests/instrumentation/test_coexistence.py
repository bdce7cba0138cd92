"""One GenAI span per model call, whichever SDK or instrumentation also traces it: OpenTelemetry's
own GenAI OpenAI instrumentation in either wrapping order, and the anthropic SDK's native tracing
on and off. Nothing duplicated, lost or mis-parented; the candidate never folded into the primary;
the primary's row in the real DuckDB store (through the real exporter) names provider and operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow import Scheduler
from otel_shadow import attributes as A
from otel_shadow.instrumentation import AnthropicShadowInstrumentor, OpenAIShadowInstrumentor
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter

from .conftest import ANTHROPIC_TRACES_ITSELF, MESSAGES

RULES = {
    "rules": [
        {"name": "r", "match": {"provider": "openai", "model": "gpt-4o"}, "candidates": [{"model": "gpt-4o-mini"}]},
        {
            "name": "a",
            "match": {"provider": "anthropic", "model": "claude-sonnet"},
            "candidates": [{"model": "claude-haiku"}],
        },
    ]
}
ASK = {
    "model": "claude-sonnet",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "What is shadow testing?"}],
}


@pytest.fixture
def store_path(tmp_path: Path, provider: TracerProvider) -> Path:
    """The spans also go through the real DuckDB exporter into a real store."""
    path = tmp_path / "spans.duckdb"
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(str(path))))
    return path


def runs(provider: TracerProvider, path: Path) -> list[tuple[Any, ...]]:
    provider.shutdown()
    with Store.open(path, read_only=True) as store:
        return store.query(
            "SELECT role, provider, operation, request_model, input_tokens > 0, output_tokens > 0 FROM shadow_runs ORDER BY role"
        ).rows


def genai_spans(spans: Any) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.attributes.get(A.GEN_AI_OPERATION_NAME) == "chat"]


@pytest.mark.parametrize("order", ["theirs-first", "ours-first"])
@pytest.mark.parametrize("stream", [False, True])
def test_with_opentelemetrys_openai_instrumentation_in_both_orders_their_span_is_the_primary(
    provider: Any, spans: Any, store_path: Path, scheduler: Scheduler, oai: openai.OpenAI, order: str, stream: bool
) -> None:
    theirs, ours = OpenAIInstrumentor(), OpenAIShadowInstrumentor()
    steps = [
        lambda: theirs.instrument(tracer_provider=provider),
        lambda: ours.instrument(rules=RULES, tracer_provider=provider, scheduler=scheduler),
    ]
    for step in steps if order == "theirs-first" else reversed(steps):  # the later wrapper is the outer one
        step()
    try:
        tracer = provider.get_tracer("app")
        with tracer.start_as_current_span("POST /ask") as request:
            kwargs = {"stream_options": {"include_usage": True}} if stream else {}
            result = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream, **kwargs)
            if stream:
                for _ in result:
                    pass
        assert scheduler.flush(10)
    finally:
        ours.uninstrument()
        theirs.uninstrument()
    finished = [s for s in spans.get_finished_spans() if s.name != "POST /ask"]
    assert len(finished) == 2  # one span per model call, nothing else
    genai = genai_spans(spans)
    assert sorted(s.attributes[A.GEN_AI_REQUEST_MODEL] for s in genai) == ["gpt-4o", "gpt-4o-mini"]
    (primary,) = [s for s in finished if s.attributes.get(A.SHADOW_ROLE) == "primary"]
    (candidate,) = [s for s in finished if s.attributes.get(A.SHADOW_ROLE) == "candidate"]
    # their GenAI span is the primary, whichever wraps outside: annotated, child of the request
    assert primary.instrumentation_scope.name != "otel_shadow"
    assert primary.attributes[A.GEN_AI_REQUEST_MODEL] == "gpt-4o" and primary.attributes[A.SHADOW_OUTCOME] == "ok"
    assert primary.attributes[A.SHADOW_CANDIDATES_SCHEDULED] == 1 and A.SHADOW_OUTPUT_HASH in primary.attributes
    assert primary.parent.span_id == request.get_span_context().span_id
    assert {s.context.trace_id for s in finished} == {request.get_span_context().trace_id}
    assert candidate.parent.span_id == primary.context.span_id
    assert candidate.links[0].context.span_id == primary.context.span_id
    assert runs(provider, store_path) == [
        ("candidate", "openai", "chat", "gpt-4o-mini", True, True),
        ("primary", "openai", "chat", "gpt-4o", True, True),
    ]


@pytest.mark.skipif(not ANTHROPIC_TRACES_ITSELF, reason="this anthropic SDK does not trace its own calls")
@pytest.mark.parametrize("native", [True, False], ids=["sdk-tracing-on", "sdk-tracing-off"])
@pytest.mark.parametrize("call", ["create", "stream", "async"])
async def test_with_the_anthropic_sdks_own_tracing_on_or_off_one_genai_span_per_call(
    provider: Any, spans: Any, store_path: Path, scheduler: Scheduler, llm_server: Any, native: bool, call: str
) -> None:
    option: Any = {"tracer_provider": provider} if native else False
    ours = AnthropicShadowInstrumentor()
    ours.instrument(rules=RULES, tracer_provider=provider, scheduler=scheduler)
    try:
        # the clients are closed before the test ends: their pooled connections are sockets
        if call == "async":
            async with anthropic.AsyncAnthropic(
                base_url=llm_server.anthropic_url, api_key="k", max_retries=0, open_telemetry=option
            ) as aclient:
                message = await aclient.messages.create(**ASK)
                assert message.content[0].text
                assert await scheduler.aflush(10)
        else:
            with anthropic.Anthropic(
                base_url=llm_server.anthropic_url, api_key="k", max_retries=0, open_telemetry=option
            ) as client:
                if call == "stream":
                    events = list(client.messages.create(**ASK, stream=True))
                    assert events[-1].type == "message_stop"
                else:
                    assert client.messages.create(**ASK).content[0].text
                assert scheduler.flush(10)
    finally:
        ours.uninstrument()
    genai = genai_spans(spans)
    assert sorted(s.attributes[A.GEN_AI_REQUEST_MODEL] for s in genai) == [
        "claude-haiku",
        "claude-sonnet",
    ]  # tokens counted once
    (candidate,) = [s for s in genai if s.attributes[A.GEN_AI_REQUEST_MODEL] == "claude-haiku"]
    assert candidate.attributes[A.SHADOW_ROLE] == "candidate" and candidate.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    (primary,) = [s for s in spans.get_finished_spans() if s.attributes.get(A.SHADOW_ROLE) == "primary"]
    (model_call,) = [s for s in genai if s.attributes[A.GEN_AI_REQUEST_MODEL] == "claude-sonnet"]
    if native:  # the SDK's span is the GenAI span, inside a thin shadow span of ours
        assert model_call.instrumentation_scope.name == "com.anthropic.sdk.python"
        assert (
            model_call.parent.span_id == primary.context.span_id and A.GEN_AI_OPERATION_NAME not in primary.attributes
        )
    else:
        assert model_call is primary or model_call.context.span_id == primary.context.span_id
    assert candidate.parent.span_id == primary.context.span_id
    rows = runs(provider, store_path)
    assert rows[0] == ("candidate", "anthropic", "chat", "claude-haiku", True, True)
    assert rows[1][0] == "primary" and rows[1][3:] == ("claude-sonnet", True, True)
    if not native:
        assert rows[1][1:3] == ("anthropic", "chat")


@pytest.mark.skipif(not ANTHROPIC_TRACES_ITSELF, reason="this anthropic SDK does not trace its own calls")
def test_with_the_anthropic_sdks_own_tracing_the_primary_row_names_provider_and_operation(
    provider: Any, store_path: Path, scheduler: Scheduler, llm_server: Any
) -> None:
    ours = AnthropicShadowInstrumentor()
    ours.instrument(rules=RULES, tracer_provider=provider, scheduler=scheduler)
    try:
        native = {"tracer_provider": provider}
        with anthropic.Anthropic(
            base_url=llm_server.anthropic_url, api_key="k", max_retries=0, open_telemetry=native
        ) as client:
            client.messages.create(**ASK)
            assert scheduler.flush(10)
    finally:
        ours.uninstrument()
    assert runs(provider, store_path)[1][:3] == ("primary", "anthropic", "chat")
