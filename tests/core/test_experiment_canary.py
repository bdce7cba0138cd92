"""A decorated experiment's canary: Shadow(canary=...) answers a sticky share of callers with the first candidate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow import attributes as A
from otel_shadow.core.canary import in_canary
from otel_shadow.errors import ConfigError

CONFIGS = [{"model": "primary"}, {"model": "cand-a"}, {"model": "cand-b"}]
USERS = [f"user-{i}" for i in range(40)]


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    sched = Scheduler(workers=2, max_pending=64, exit_grace=0.5)
    yield sched
    sched.shutdown(0.5)


def _roles(exporter: InMemorySpanExporter) -> list[str]:
    return [str(s.attributes[A.SHADOW_ROLE]) for s in exporter.get_finished_spans() if A.SHADOW_ROLE in s.attributes]


def test_a_keyword_user_in_the_cohort_is_answered_by_the_first_candidate(
    tracer_provider: TracerProvider, scheduler: Scheduler, span_exporter: InMemorySpanExporter
) -> None:
    shadow = Shadow(
        CONFIGS,
        tracer_provider=tracer_provider,
        scheduler=scheduler,
        sample_rate=0.0,
        canary={"fraction": 0.5, "key": "user"},
    )

    @shadow.experiment(name="answer")
    def answer(question: str, user: str | None = None, *, config: Config) -> str:
        return str(config["model"])

    served = {u: answer("hi", user=u) for u in USERS}
    assert {u for u, model in served.items() if model == "cand-a"} == {
        u for u in USERS if in_canary("answer", 0.5, "user", {"user": u})
    }
    assert set(served.values()) == {"primary", "cand-a"}  # never the second candidate
    assert answer("hi") == "primary"  # no key: the primary
    assert answer("hi", USERS[0]) == "primary"  # a positional key is not read
    canary = [s for s in span_exporter.get_finished_spans() if s.attributes.get(A.SHADOW_ROLE) == A.ROLE_CANARY]
    assert len(canary) == list(served.values()).count("cand-a")
    span = canary[0]
    assert span.attributes[A.SHADOW_CONFIG_ID] == shadow.candidates[0].id
    assert span.attributes[A.SHADOW_PRIMARY_CONFIG_ID] == shadow.primary.id
    assert span.attributes[A.SHADOW_OUTCOME] == A.OUTCOME_OK


def test_without_a_canary_every_caller_gets_the_primary(tracer_provider: TracerProvider, scheduler: Scheduler) -> None:
    shadow = Shadow(CONFIGS, tracer_provider=tracer_provider, scheduler=scheduler, sample_rate=0.0)

    @shadow.experiment()
    def answer(user: str, *, config: Config) -> str:
        return str(config["model"])

    assert {answer(user=u) for u in USERS} == {"primary"}


async def test_an_async_experiment_keyed_by_baggage_raises_the_candidates_error(
    tracer_provider: TracerProvider, scheduler: Scheduler, span_exporter: InMemorySpanExporter
) -> None:
    shadow = Shadow(CONFIGS, tracer_provider=tracer_provider, scheduler=scheduler, sample_rate=0.0)

    @shadow.experiment(canary={"fraction": 1.0, "key": "baggage:user.id"})
    async def answer(config: Config) -> str:
        if config["model"] == "cand-a":
            raise TimeoutError("the candidate is slow")
        return str(config["model"])

    assert await answer() == "primary"  # no baggage entry: the primary
    token = otel_context.attach(baggage.set_baggage("user.id", "u-1"))
    try:
        with pytest.raises(TimeoutError):  # the canary's answer is the caller's, errors included
            await answer()
    finally:
        otel_context.detach(token)
    assert _roles(span_exporter) == [A.ROLE_PRIMARY, A.ROLE_CANARY]
    failed = span_exporter.get_finished_spans()[-1]
    assert failed.attributes[A.SHADOW_OUTCOME] == A.OUTCOME_ERROR
    assert failed.attributes[A.ERROR_TYPE] == "TimeoutError"


def test_a_canary_call_schedules_no_candidates(
    tracer_provider: TracerProvider, scheduler: Scheduler, span_exporter: InMemorySpanExporter
) -> None:
    shadow = Shadow(CONFIGS, tracer_provider=tracer_provider, scheduler=scheduler, sample_rate=1.0)

    @shadow.experiment(canary={"fraction": 1.0, "key": "request:tenant.id"})
    def answer(tenant: dict[str, Any], *, config: Config) -> str:
        return str(config["model"])

    assert answer(tenant={"id": 7}) == "cand-a"
    assert answer(tenant={}) == "primary"  # no key: the primary, shadowed by both candidates
    assert scheduler.flush(5)
    roles = _roles(span_exporter)
    assert roles.count(A.ROLE_CANARY) == 1 and roles.count(A.ROLE_PRIMARY) == 1
    assert roles.count(A.ROLE_CANDIDATE) == 2  # the primary's two, none for the canary call


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        ({"fraction": 1.5, "key": "user"}, "outside 0.0–1.0"),
        ({"fraction": 0.1, "key": "cookie:id"}, 'must be "user", "baggage:<name>" or "request:<field>"'),
        ({"fraction": 0.1}, "a canary is"),
    ],
)
def test_a_bad_canary_is_refused_at_construction(canary: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Shadow(CONFIGS, canary=canary)


def test_a_canary_needs_a_candidate_to_serve() -> None:
    with pytest.raises(ConfigError, match="serves the first candidate config"):
        Shadow([{"model": "primary"}], canary={"fraction": 0.1, "key": "user"})
