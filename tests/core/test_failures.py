"""otel-shadow's own failures: the wrapped call is untouched; the failure is recorded on the span,
counted in ``shadow.internal.errors`` and logged once per place, not once per call."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow.core import failures
from otel_shadow.core.failures import INTERNAL_ERROR_EVENT, INTERNAL_ERRORS_METRIC, WHERE_ATTRIBUTE


def _broken_redact(text: str) -> str:
    raise RuntimeError("redaction hook is broken")


def _counted(reader: InMemoryMetricReader, where: str) -> int:
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == INTERNAL_ERRORS_METRIC:
                    for point in metric.data.data_points:
                        if point.attributes.get(WHERE_ATTRIBUTE) == where:
                            return int(point.value)
    return 0


def test_an_internal_failure_changes_nothing_for_the_caller_and_is_recorded_counted_and_logged_once(
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(failures, "_last_logged", {})  # a fresh rate limit for this test
    reader = InMemoryMetricReader()
    scheduler = Scheduler(workers=1)
    shadow = Shadow(
        [{"model": "p"}, {"model": "c"}],
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        scheduler=scheduler,
        capture_content=True,
        redact=_broken_redact,  # content capture of the primary fails inside otel-shadow
        sample_rate=0.0,
    )

    @shadow.experiment(name="broken")
    def generate(prompt: str, config: Config) -> str:
        return f"{config['model']}:{prompt}"

    before = failures.failures().get("primary_output", 0)
    with caplog.at_level(logging.DEBUG, logger="otel_shadow"):
        answers = [generate("hi") for _ in range(3)]
    assert answers == ["p:hi"] * 3  # the caller's answer is untouched
    primaries = [s for s in span_exporter.get_finished_spans() if s.name == "broken"]
    assert len(primaries) == 3
    for span in primaries:
        (event,) = [e for e in span.events if e.name == INTERNAL_ERROR_EVENT]
        assert event.attributes is not None and event.attributes[WHERE_ATTRIBUTE] == "primary_output"
        assert span.attributes is not None and span.attributes["shadow.outcome"] == "ok"  # still ended, still ok
        assert span.attributes["shadow.experiment"] == "broken" and span.attributes["shadow.role"] == "primary"
    assert failures.failures()["primary_output"] == before + 3
    assert _counted(reader, "primary_output") == before + 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "primary_output" in r.getMessage()]
    assert len(warnings) == 1  # once per place per minute, not once per call
    assert warnings[0].exc_info is not None  # with the traceback that explains it
    scheduler.shutdown(1)


def test_the_handler_never_raises_even_without_a_span() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no message")

    failures.internal_failure("test_unprintable", Unprintable())  # must not raise
    assert failures.failures()["test_unprintable"] >= 1


def test_a_candidate_whose_recording_fails_still_gets_a_result(
    tracer_provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate span that cannot be recorded: the task still finishes (a fallback result) and
    the scheduler is told, so flush() does not wait for it forever."""
    scheduler = Scheduler(workers=1)
    shadow = Shadow([{"model": "p"}, {"model": "c"}], tracer_provider=tracer_provider, scheduler=scheduler, metrics=[])

    @shadow.experiment(name="record_fails")
    def generate(config: Config) -> str:
        return str(config["model"])

    def broken_count_run(*args: Any) -> None:
        raise RuntimeError("tally broken")

    monkeypatch.setattr(shadow.telemetry, "count_run", broken_count_run)
    before = failures.failures().get("record_candidate", 0)
    with Shadow.run(generate, await_variants=True) as runner:
        result = runner()
    assert result.main_result.result == "p"
    (variant,) = result.variant_results
    assert variant.status == "ok" and variant.config_id == shadow.candidates[0].id
    assert failures.failures()["record_candidate"] == before + 1
    assert scheduler.flush(5) and scheduler.unfinished == 0
    scheduler.shutdown(1)
