"""Time-bound experiments: past ``ends_at``, ``max_duration`` or ``max_calls`` no candidate is
scheduled, and every later primary span says why (drop reason ``expired``)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow import Config, ConfigError, Scheduler, Shadow
from otel_shadow import attributes as A


@pytest.fixture
def scheduler() -> Any:
    sched = Scheduler(workers=2, max_pending=64)
    yield sched
    sched.shutdown(2)


def _primaries(spans: InMemorySpanExporter, name: str) -> list[Any]:
    found = [s for s in spans.get_finished_spans() if s.name == name and s.attributes[A.SHADOW_ROLE] == "primary"]
    return sorted(found, key=lambda s: s.start_time)


def _candidates(spans: InMemorySpanExporter, name: str) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.name == name and s.attributes[A.SHADOW_ROLE] == "candidate"]


def test_max_calls_shadows_exactly_that_many_calls_then_records_expired(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = Shadow([{"model": "p"}, {"model": "c"}], tracer_provider=tracer_provider, scheduler=scheduler)

    @shadow.experiment(name="capped", max_calls=2)
    def generate(prompt: str, config: Config) -> str:
        return f"{config['model']}:{prompt}"

    assert [generate(str(i)) for i in range(5)] == [f"p:{i}" for i in range(5)]  # the primary always answers
    assert shadow.flush(5)
    primaries = _primaries(span_exporter, "capped")
    assert [p.attributes[A.SHADOW_CANDIDATES_SCHEDULED] for p in primaries] == [1, 1, 0, 0, 0]
    assert [p.attributes.get(A.SHADOW_DROP_REASONS) for p in primaries] == [None, None, "expired", "expired", "expired"]
    assert len(_candidates(span_exporter, "capped")) == 2
    assert shadow.telemetry.tallies()[0][("capped", "expired")] == 3


def test_a_time_limited_experiment_stops_on_time(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = Shadow([{"model": "p"}, {"model": "c"}], tracer_provider=tracer_provider, scheduler=scheduler)
    made = time.monotonic()

    @shadow.experiment(name="timed", max_duration=0.3)
    def generate(config: Config) -> str:
        return str(config["model"])

    generate()
    deadline = time.monotonic() + 10  # poll until it ends: it must end, and not before its limit
    while True:
        generate()
        last = _primaries(span_exporter, "timed")[-1]
        if last.attributes.get(A.SHADOW_DROP_REASONS) == "expired":
            ended = time.monotonic()
            break
        assert time.monotonic() < deadline, "the experiment never ended"
    assert ended - made >= 0.3  # never before its limit
    for _ in range(3):  # and once ended, it stays ended
        generate()
    primaries = _primaries(span_exporter, "timed")
    assert primaries[0].attributes[A.SHADOW_CANDIDATES_SCHEDULED] == 1
    reasons = [p.attributes.get(A.SHADOW_DROP_REASONS) for p in primaries]
    first = reasons.index("expired")
    assert reasons[first:] == ["expired"] * (len(reasons) - first)
    assert "expired" not in reasons[:first]  # before the limit: scheduled (or queue_full under this loop)
    assert shadow.flush(5)
    scheduled = sum(p.attributes[A.SHADOW_CANDIDATES_SCHEDULED] for p in primaries)
    assert len(_candidates(span_exporter, "timed")) == scheduled > 0


def test_an_end_time_in_the_past_shadows_nothing_and_one_in_the_future_everything(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    now = datetime.now(timezone.utc)
    shadow = Shadow(
        [{"model": "p"}, {"model": "c"}],
        tracer_provider=tracer_provider,
        scheduler=scheduler,
        ends_at=now - timedelta(seconds=1),
    )

    @shadow.experiment(name="over")
    def over(config: Config) -> str:
        return str(config["model"])

    @shadow.experiment(name="running", ends_at=(now + timedelta(hours=1)).isoformat())
    def running(config: Config) -> str:
        return str(config["model"])

    over()
    running()
    assert shadow.flush(5)
    (ended,) = _primaries(span_exporter, "over")
    assert ended.attributes[A.SHADOW_DROP_REASONS] == "expired" and ended.attributes[A.SHADOW_SAMPLED] is False
    (live,) = _primaries(span_exporter, "running")
    assert live.attributes[A.SHADOW_CANDIDATES_SCHEDULED] == 1
    assert _candidates(span_exporter, "over") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_duration": 0}, "max_duration must be positive seconds; got 0"),
        ({"max_calls": -1}, "max_calls must be a positive whole number; got -1"),
        ({"ends_at": "next tuesday"}, "is not an ISO 8601 time"),
        ({"ends_at": datetime(2030, 1, 1)}, "has no time zone"),
    ],
)
def test_a_bad_limit_is_refused_with_the_key_and_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Shadow([{"model": "p"}, {"model": "c"}], **kwargs)
