"""The real openai/anthropic clients, over HTTP, against the shipped simulated model server."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow import Scheduler
from otel_shadow.instrumentation import AnthropicShadowInstrumentor, OpenAIShadowInstrumentor
from otel_shadow.testing import LLMServer


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    return tp


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    sched = Scheduler(workers=4, max_pending=64)
    yield sched
    sched.shutdown(2)


@pytest.fixture
def instrument(provider: TracerProvider, scheduler: Scheduler) -> Iterator[Callable[..., None]]:
    active: list[Any] = []

    def start(rules: Any, **kwargs: Any) -> None:
        for cls in (OpenAIShadowInstrumentor, AnthropicShadowInstrumentor):
            inst = cls()
            inst.instrument(rules=rules, tracer_provider=provider, scheduler=scheduler, **kwargs)
            active.append(inst)

    yield start
    for inst in active:
        inst.uninstrument()


# the clients are closed after each test: their pooled connections are sockets (ResourceWarning)
@pytest.fixture
def oai(llm_server: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm_server.openai_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture
async def aoai(llm_server: LLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=llm_server.openai_url, api_key="test-key", max_retries=0) as client:
        yield client


# The anthropic SDK (2.x) traces its own calls, on by default; it is off here, so the primary's
# GenAI span is ours. test_coexistence.py runs with it on and off.
ANTHROPIC_TRACES_ITSELF = "open_telemetry" in inspect.signature(anthropic.Anthropic.__init__).parameters
NO_SDK_SPANS: dict[str, Any] = {"open_telemetry": False} if ANTHROPIC_TRACES_ITSELF else {}


@pytest.fixture
def claude(llm_server: LLMServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=llm_server.anthropic_url, api_key="test-key", max_retries=0, **NO_SDK_SPANS
    ) as client:
        yield client


@pytest.fixture
async def aclaude(llm_server: LLMServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=llm_server.anthropic_url, api_key="test-key", max_retries=0, **NO_SDK_SPANS
    ) as client:
        yield client


def by_role(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        role = span.attributes.get("shadow.role")
        if role:
            out.setdefault(role, []).append(span)
    return out


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is shadow testing?"}]
