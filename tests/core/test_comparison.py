"""Comparison metrics: computed on the worker, recorded as shadow.metric.* on candidate and replicate spans."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow import Config, ConfigError, Scheduler, Shadow
from otel_shadow import attributes as A
from otel_shadow.core.comparison import Comparison, normalize_text

from .test_experiment import make_shadow, scheduler, spans_by_role  # noqa: F401  (fixture)

M = A.SHADOW_METRIC_PREFIX


def test_normalization_ignores_case_punctuation_unicode_forms_and_spacing() -> None:
    assert normalize_text("  Hello,   WORLD!\n") == "hello world"
    assert normalize_text("ﬁne") == "fine"  # NFKC: the ligature is two letters
    assert normalize_text("a-b") == normalize_text("a b")


def test_the_default_metrics_compare_two_texts() -> None:
    attrs = Comparison.of(None).attributes("Paris is the capital.", "paris is the CAPITAL")
    assert attrs[M + "normalized_match"] is True
    assert attrs[M + "similarity"] == 1.0
    assert attrs[M + "json_valid"] is False and attrs[M + "primary_json_valid"] is False
    assert attrs[M + "length_ratio"] == pytest.approx(20 / 21, abs=1e-6)
    different = Comparison.of(None).attributes("Paris is the capital.", "Lyon is a city in France.")
    assert different[M + "normalized_match"] is False
    assert 0.0 < different[M + "similarity"] < 0.7


def test_key_fields_compare_named_json_paths() -> None:
    comparison = Comparison.of([{"key_fields": ["answer", "items[0].id", "$.missing"]}])
    primary = json.dumps({"answer": "42", "items": [{"id": 7}], "note": "x"})
    agree = comparison.attributes(primary, json.dumps({"answer": "42", "items": [{"id": 7}], "note": "y"}))
    assert agree == {M + "field.answer": True, M + "field.items[0].id": True, M + "key_fields_match": 1.0}
    half = comparison.attributes(primary, json.dumps({"answer": "41", "items": [{"id": 7}]}))
    assert half[M + "field.answer"] is False and half[M + "key_fields_match"] == 0.5
    not_json = comparison.attributes(primary, "the answer is 42")
    assert not_json[M + "key_fields_match"] == 0.0
    assert comparison.attributes("not json", primary) == {}  # no evidence without the primary's fields


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["simlarity"], "unknown metric 'simlarity'"),
        ([{"key_fields": "answer"}], "list of JSON paths"),
        ([{"key_fields": ["items[x]"]}], "not a JSON path"),
        ([lambda p, c: 1.0], "needs a name"),
        (["similarity", "similarity"], "given twice"),
        ("similarity", "expected a list"),
    ],
)
def test_a_wrong_metric_spec_is_a_clear_config_error(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Comparison.of(spec, "Shadow(metrics=...)")


def test_candidate_and_replicate_spans_carry_the_metrics_the_primary_does_not(
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    scheduler: Scheduler,  # noqa: F811
) -> None:
    shadow = make_shadow(tracer_provider, scheduler, replicate_rate=1.0)

    @shadow.experiment()
    def generate(config: Config) -> str:
        return "The answer is 42." if config["model"] == "primary" else "the answer is 42"

    with Shadow.run(generate, await_variants=True) as runner:
        runner()
    roles = spans_by_role(span_exporter)
    (candidate,) = roles["candidate"]
    (replicate,) = roles["replicate"]
    (primary,) = roles["primary"]
    assert candidate.attributes[M + "normalized_match"] is True
    assert candidate.attributes[A.SHADOW_OUTPUT_MATCH] is False  # exact match says nothing here
    assert replicate.attributes[M + "similarity"] == 1.0  # the noise floor: the primary against itself
    assert not [k for k in primary.attributes if k.startswith(M)]


def test_metrics_run_on_the_worker_not_the_callers_thread(
    tracer_provider: TracerProvider,
    scheduler: Scheduler,  # noqa: F811
) -> None:
    threads: list[str] = []

    def where(primary: str, candidate: str) -> bool:
        threads.append(threading.current_thread().name)
        return True

    shadow = make_shadow(tracer_provider, scheduler, metrics=[{"where": where}])

    @shadow.experiment()
    def generate(config: Config) -> str:
        return config["model"]

    generate()
    assert scheduler.flush(5)
    assert threads and threads[0] != threading.current_thread().name


def test_a_raising_metric_is_counted_and_never_felt(
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    scheduler: Scheduler,  # noqa: F811
) -> None:
    reader = InMemoryMetricReader()

    def broken(primary: str, candidate: str) -> float:
        raise ZeroDivisionError("metric bug")

    def returns_text(primary: str, candidate: str) -> Any:
        return "not a number"

    shadow = make_shadow(
        tracer_provider,
        scheduler,
        meter_provider=MeterProvider(metric_readers=[reader]),
        metrics=["similarity", broken, {"returns_text": returns_text}],
    )

    @shadow.experiment(name="gen")
    def generate(config: Config) -> str:
        return config["model"]

    with Shadow.run(generate, await_variants=True) as runner:
        result = runner()
    assert result.main_result.result == "primary"
    (variant,) = result.variant_results
    assert variant.status == "ok" and variant.result == "candidate"
    (candidate,) = spans_by_role(span_exporter)["candidate"]
    assert M + "similarity" in candidate.attributes
    assert M + "broken" not in candidate.attributes and M + "returns_text" not in candidate.attributes
    points = {
        tuple(sorted(p.attributes.items())): p.value
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == A.METRIC_COMPARISON_ERRORS
        for p in metric.data.data_points
    }
    assert points == {
        (("shadow.experiment", "gen"), ("shadow.metric.name", "broken")): 1,
        (("shadow.experiment", "gen"), ("shadow.metric.name", "returns_text")): 1,
    }


def test_an_experiment_can_choose_its_own_metrics_or_none(
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    scheduler: Scheduler,  # noqa: F811
) -> None:
    shadow = make_shadow(tracer_provider, scheduler)

    @shadow.experiment(name="none", metrics=[])
    def quiet(config: Config) -> str:
        return config["model"]

    @shadow.experiment(name="json", metrics=["json_valid"])
    def structured(config: Config) -> dict[str, str]:
        return {"model": config["model"]}

    quiet()
    structured()
    assert scheduler.flush(5)
    by_experiment = {s.attributes[A.SHADOW_EXPERIMENT]: s for s in spans_by_role(span_exporter)["candidate"]}
    assert not [k for k in by_experiment["none"].attributes if k.startswith(M)]
    assert by_experiment["json"].attributes[M + "json_valid"] is True  # a dict output is compared as JSON
    assert M + "similarity" not in by_experiment["json"].attributes


def test_a_failed_primary_gives_its_candidates_nothing_to_compare_with(
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    scheduler: Scheduler,  # noqa: F811
) -> None:
    shadow = make_shadow(tracer_provider, scheduler)

    @shadow.experiment()
    def generate(config: Config) -> str:
        if config["model"] == "primary":
            raise RuntimeError("primary down")
        return "fine"

    with pytest.raises(RuntimeError):
        generate()
    assert scheduler.flush(5)
    (candidate,) = spans_by_role(span_exporter)["candidate"]
    assert candidate.attributes[A.SHADOW_OUTCOME] == "ok"
    assert not [k for k in candidate.attributes if k.startswith(M)]
