"""Shared fixtures: a real TracerProvider with an in-memory exporter, and a clean environment.

The global tracer provider can be set once per process, so the session installs one whose
exporter each test clears. Tests that need their own provider pass it to ``Shadow`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow.core import sampling

GLOBAL_EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(GLOBAL_EXPORTER))
trace.set_tracer_provider(_provider)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_SHADOW_* or content-capture setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("OTEL_SHADOW_") or name == "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT":
            monkeypatch.delenv(name, raising=False)
    sampling._reset_kill_switch_cache()
    yield
    sampling._reset_kill_switch_cache()


@pytest.fixture
def global_spans() -> InMemorySpanExporter:
    """The exporter behind the global provider, emptied for this test."""
    GLOBAL_EXPORTER.clear()
    return GLOBAL_EXPORTER


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider
