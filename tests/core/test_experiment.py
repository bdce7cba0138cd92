"""Guard rails: candidates never hurt the primary; every candidate ends with a recorded outcome."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import traceback
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow import Config, ExperimentError, Scheduler, Shadow
from otel_shadow import attributes as A
from otel_shadow.core.candidate import CandidateTask, PrimaryEnd
from otel_shadow.core.experiment import ExperimentCandidate

CONFIGS = [{"model": "primary"}, {"model": "candidate"}]


@pytest.fixture
def scheduler() -> Any:
    sched = Scheduler(workers=2, max_pending=8, exit_grace=0.5)
    yield sched
    sched.shutdown(0.5)


def make_shadow(tracer_provider: TracerProvider, scheduler: Scheduler, **kw: Any) -> Shadow:
    return Shadow(configs=kw.pop("configs", CONFIGS), tracer_provider=tracer_provider, scheduler=scheduler, **kw)


def spans_by_role(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        if A.SHADOW_ROLE in span.attributes:
            out.setdefault(span.attributes[A.SHADOW_ROLE], []).append(span)
    return out


class PrimaryBoom(ValueError):
    pass


def test_primary_exception_reaches_the_caller_unchanged_and_candidates_still_run(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler)

    @shadow.experiment()
    def generate(prompt: str, config: Config) -> str:
        if config["model"] == "primary":
            raise PrimaryBoom("primary failed on " + prompt)
        return "candidate answer"

    with pytest.raises(PrimaryBoom, match="primary failed on hi") as info:
        generate("hi")
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "generate"  # the original traceback, down to the raising line
    assert scheduler.flush(5)
    roles = spans_by_role(span_exporter)
    assert roles["primary"][0].attributes[A.SHADOW_OUTCOME] == "error"
    assert roles["candidate"][0].attributes[A.SHADOW_OUTCOME] == "ok"
    assert A.SHADOW_OUTPUT_MATCH not in roles["candidate"][0].attributes


def test_candidate_errors_are_recorded_never_raised(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler)

    @shadow.experiment()
    def generate(config: Config) -> str:
        if config["model"] == "candidate":
            raise KeyError("missing field")
        return "ok"

    with Shadow.run(generate, await_variants=True) as runner:
        result = runner()
    assert result.main_result.result == "ok" and result.main_result.status == "ok"
    (variant,) = result.variant_results
    assert variant.status == "error" and variant.result is None
    assert variant.error is not None and variant.error.type == "KeyError"
    assert "missing field" in variant.error.message
    candidate = spans_by_role(span_exporter)["candidate"][0]
    assert candidate.status.status_code.name == "ERROR"
    assert candidate.attributes[A.ERROR_TYPE] == "KeyError"


def test_a_hanging_candidate_times_out_and_the_caller_never_waits(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    release = threading.Event()
    shadow = make_shadow(tracer_provider, scheduler, timeout=0.2)

    @shadow.experiment()
    def generate(config: Config) -> str:
        if config["model"] == "candidate":
            release.wait(30)  # hangs until the test releases it
        return config["model"]

    assert generate() == "primary"  # returned while the candidate is still blocked
    assert not release.is_set()
    with Shadow.run(generate, await_variants=True) as runner:
        result = runner()
    assert [v.status for v in result.variant_results] == ["timeout"]
    assert result.variant_results[0].error.type == "TimeoutError"
    release.set()
    assert scheduler.flush(5)
    outcomes = [s.attributes[A.SHADOW_OUTCOME] for s in spans_by_role(span_exporter)["candidate"]]
    assert outcomes == ["timeout", "timeout"]


def test_a_full_queue_drops_and_counts_without_blocking(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    release = threading.Event()
    scheduler = Scheduler(workers=1, max_pending=2)
    shadow = make_shadow(tracer_provider, scheduler, timeout=30)

    @shadow.experiment()
    def generate(config: Config) -> str:
        if config["model"] == "candidate":
            release.wait(30)
        return config["model"]

    for _ in range(5):
        assert generate() == "primary"
    # the first primary is ended by the worker that picks up its candidate (PrimaryEnd); the
    # others found no free worker (it hangs) and were ended by the caller at once
    deadline = time.monotonic() + 5
    while len(spans_by_role(span_exporter).get("primary", [])) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    primaries = sorted(spans_by_role(span_exporter)["primary"], key=lambda s: s.start_time)
    assert [p.end_time is not None for p in primaries] == [True] * 5
    scheduled = [p.attributes[A.SHADOW_CANDIDATES_SCHEDULED] for p in primaries]
    dropped = [p.attributes[A.SHADOW_CANDIDATES_DROPPED] for p in primaries]
    assert scheduled == [1, 1, 0, 0, 0] and dropped == [0, 0, 1, 1, 1]
    assert primaries[-1].attributes[A.SHADOW_DROP_REASONS] == "queue_full"
    assert shadow.telemetry.tallies()[0] == {(generate.__qualname__, "queue_full"): 3}
    assert scheduler.pending == 2 and scheduler.unfinished == 2
    release.set()
    assert scheduler.flush(5)
    assert scheduler.unfinished == 0
    scheduler.shutdown(1)


def test_stuck_workers_are_replaced_so_new_candidates_still_run(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    release = threading.Event()
    scheduler = Scheduler(workers=1, max_pending=10)
    shadow = make_shadow(tracer_provider, scheduler, timeout=0.1)

    @shadow.experiment()
    def generate(hang: bool, config: Config) -> str:
        if config["model"] == "candidate" and hang:
            release.wait(30)
        return config["model"]

    with Shadow.run(generate, await_variants=True) as runner:
        assert [v.status for v in runner(True).variant_results] == ["timeout"]
        assert [v.status for v in runner(False).variant_results] == ["ok"]
    release.set()
    scheduler.shutdown(1)


def test_sampling_rate_is_deterministic_for_a_key(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler, sample_rate=0.5, sample_key=lambda user, config=None: user)

    @shadow.experiment()
    def generate(user: str, config: Config) -> str:
        return config["model"]

    with Shadow.run(generate, await_variants=True) as runner:
        first = {u: runner(u).variant_results[0].status for u in (f"user-{i}" for i in range(200))}
        again = {u: runner(u).variant_results[0].status for u in first}
    assert first == again
    kept = sum(1 for s in first.values() if s == "ok")
    assert 60 < kept < 140  # about half
    dropped = next(r for r in spans_by_role(span_exporter)["primary"] if r.attributes[A.SHADOW_CANDIDATES_DROPPED])
    assert dropped.attributes[A.SHADOW_DROP_REASONS] == "sampling"
    assert dropped.attributes[A.SHADOW_SAMPLED] is False


def test_trace_id_sampling_keeps_a_whole_trace_together(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler, sample_rate=0.5)

    @shadow.experiment()
    def first(config: Config) -> str:
        return "1"

    @shadow.experiment()
    def second(config: Config) -> str:
        return "2"

    tracer = tracer_provider.get_tracer("test")
    for _ in range(60):
        with tracer.start_as_current_span("request"):
            first()
            second()
    by_trace: dict[int, set[bool]] = {}
    for span in spans_by_role(span_exporter)["primary"]:
        by_trace.setdefault(span.context.trace_id, set()).add(span.attributes[A.SHADOW_SAMPLED])
    assert all(len(v) == 1 for v in by_trace.values())
    assert {next(iter(v)) for v in by_trace.values()} == {True, False}


def test_kill_switch_turns_every_candidate_off(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    scheduler: Scheduler,
) -> None:
    from otel_shadow.core import sampling

    shadow = make_shadow(tracer_provider, scheduler)

    @shadow.experiment()
    def generate(config: Config) -> str:
        return config["model"]

    monkeypatch.setenv("OTEL_SHADOW_DISABLED", "true")
    sampling._reset_kill_switch_cache()
    with Shadow.run(generate, await_variants=True) as runner:
        result = runner()
    assert result.main_result.result == "primary"
    assert [(v.status, v.drop_reason) for v in result.variant_results] == [("dropped", "disabled")]
    assert "candidate" not in spans_by_role(span_exporter)


def test_the_kill_switch_is_counted_only_for_calls_the_rate_kept(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    scheduler: Scheduler,
) -> None:
    """The rate is tested first: ``disabled`` counts the candidates the kill switch stopped."""
    from otel_shadow.core import sampling

    shadow = make_shadow(tracer_provider, scheduler, sample_rate=0.5)

    @shadow.experiment()
    def generate(config: Config) -> str:
        return config["model"]

    monkeypatch.setenv("OTEL_SHADOW_DISABLED", "true")
    sampling._reset_kill_switch_cache()
    tracer = tracer_provider.get_tracer("test")
    for _ in range(100):
        with tracer.start_as_current_span("request"):
            generate()
    reasons = [p.attributes[A.SHADOW_DROP_REASONS] for p in spans_by_role(span_exporter)["primary"]]
    assert "candidate" not in spans_by_role(span_exporter)
    assert set(reasons) == {"sampling", "disabled"}
    assert 25 < reasons.count("disabled") < 75  # about half: the calls the rate would have kept


def test_output_fingerprints_are_xxh3_64_of_the_utf8_text() -> None:
    """The algorithm is part of the span contract: any SDK (any language) can compute it."""
    from otel_shadow.core.content import fingerprint

    assert fingerprint("") == ("2d06800538d394c2", 0)  # XXH3-64 of no bytes (the reference vector)
    assert fingerprint("héllo")[1] == 5
    assert fingerprint("héllo")[0] == fingerprint(b"h\xc3\xa9llo")[0]  # the UTF-8 text is hashed
    assert fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1})  # canonical JSON
    assert fingerprint("a")[0] != fingerprint("b")[0]


def test_no_shadow_of_a_shadow(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler)
    inner_shadow = make_shadow(tracer_provider, scheduler, configs=[{"model": "inner-a"}, {"model": "inner-b"}])

    @inner_shadow.experiment()
    def inner(config: Config) -> str:
        return config["model"]

    @shadow.experiment()
    def outer(config: Config) -> str:
        return f"{config['model']}+{inner()}"

    with Shadow.run(outer, await_variants=True) as runner:
        result = runner()
    assert result.main_result.result == "primary+inner-a"
    assert result.variant_results[0].result == "candidate+inner-a"
    assert scheduler.flush(5)
    inner_primaries = [s for s in span_exporter.get_finished_spans() if s.name == inner.__qualname__]
    # one inner run under the outer primary (with its own candidate), one under the outer candidate
    nested = [s for s in inner_primaries if s.attributes.get(A.SHADOW_DROP_REASONS) == "nested"]
    assert len(nested) == 1
    inner_candidates = [s for s in inner_primaries if s.attributes[A.SHADOW_ROLE] == "candidate"]
    assert len(inner_candidates) == 1  # only the outer primary's inner call was shadowed


def test_spans_follow_the_contract(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(
        tracer_provider, scheduler, configs=[{"model": "a", "temperature": 0.5}, {"model": "b", "temperature": 0.5}]
    )

    @shadow.experiment(name="summarize")
    def generate(prompt: str, config: Config) -> str:
        return "same answer"

    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        generate("secret prompt")
    assert scheduler.flush(5)
    roles = spans_by_role(span_exporter)
    (primary,) = roles["primary"]
    (candidate,) = roles["candidate"]
    assert primary.parent.span_id == request.get_span_context().span_id
    assert candidate.context.trace_id == primary.context.trace_id
    assert candidate.parent.span_id == primary.context.span_id
    (link,) = candidate.links
    assert link.context.span_id == primary.context.span_id and link.attributes[A.SHADOW_LINK] == "primary"
    for span, model in ((primary, "a"), (candidate, "b")):
        assert span.attributes[A.SHADOW_EXPERIMENT] == "summarize"
        assert span.attributes["shadow.config.model"] == model
        assert span.attributes["shadow.config.temperature"] == 0.5
        assert span.attributes[A.SHADOW_OUTCOME] == "ok"
        assert span.attributes[A.SHADOW_OUTPUT_LENGTH] == len("same answer")
        assert A.SHADOW_OUTPUT not in span.attributes and A.SHADOW_INPUT not in span.attributes
    assert primary.attributes[A.SHADOW_OUTPUT_HASH] == candidate.attributes[A.SHADOW_OUTPUT_HASH]
    assert candidate.attributes[A.SHADOW_OUTPUT_MATCH] is True
    assert primary.attributes[A.SHADOW_CANDIDATES_SCHEDULED] == 1
    assert primary.attributes[A.SHADOW_CANDIDATES_DROPPED] == 0
    assert primary.attributes[A.SHADOW_CONFIG_ID] != candidate.attributes[A.SHADOW_CONFIG_ID]
    assert "secret prompt" not in str([dict(s.attributes) for s in (primary, candidate)])


def test_content_capture_is_opt_in_and_redacted(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(
        tracer_provider,
        scheduler,
        capture_content=True,
        redact=lambda text: text.replace("alice@example.com", "[email]"),
    )

    @shadow.experiment()
    def generate(prompt: str, config: Config) -> str:
        return f"{config['model']} answers {prompt}"

    generate("mail alice@example.com")
    assert scheduler.flush(5)
    for span in span_exporter.get_finished_spans():
        assert "[email]" in span.attributes[A.SHADOW_OUTPUT]
        assert "alice" not in span.attributes[A.SHADOW_OUTPUT] + span.attributes[A.SHADOW_INPUT]


def test_replicates_rerun_the_primary_config(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler, replicate_rate=1.0)

    @shadow.experiment()
    def generate(config: Config) -> str:
        return config["model"]

    with Shadow.run(generate, await_variants=True) as runner:
        result = runner()
    assert sorted((v.role, v.result) for v in result.variant_results) == [
        ("candidate", "candidate"),
        ("replicate", "primary"),
    ]
    replicate = spans_by_role(span_exporter)["replicate"][0]
    assert replicate.attributes[A.SHADOW_CONFIG_ID] == result.main_result.config_id


def test_the_passed_tracer_provider_is_used_and_none_is_installed(scheduler: Scheduler) -> None:
    import subprocess
    import sys

    script = (
        "from opentelemetry import trace\n"
        "from otel_shadow import Shadow, Config\n"
        "s = Shadow(configs=[{'m': 1}, {'m': 2}])\n"
        "@s.experiment()\n"
        "def f(config: Config): return config['m']\n"
        "assert f() == 1\n"
        "s.flush(5)\n"
        "print(type(trace.get_tracer_provider()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ProxyTracerProvider"


def test_metrics_count_outcomes_and_drops(tracer_provider: TracerProvider, scheduler: Scheduler) -> None:
    reader = InMemoryMetricReader()
    shadow = make_shadow(
        tracer_provider,
        scheduler,
        meter_provider=MeterProvider(metric_readers=[reader]),
        configs=[{"m": "p"}, {"m": "ok"}, {"m": "bad"}],
    )

    @shadow.experiment(name="generate")
    def generate(fail_all: bool, config: Config) -> str:
        if config["m"] == "bad":
            raise RuntimeError("bad")
        return "x"

    with Shadow.run(generate, await_variants=True) as runner:
        runner(False)
        runner(False)
    with pytest.MonkeyPatch.context() as mp:
        from otel_shadow.core import sampling

        mp.setenv("OTEL_SHADOW_DISABLED", "1")
        sampling._reset_kill_switch_cache()
        generate(False)
    sampling._reset_kill_switch_cache()
    data = reader.get_metrics_data()
    points = {
        metric.name: {tuple(sorted(p.attributes.items())): p.value for p in metric.data.data_points}
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    runs = points[A.METRIC_CANDIDATE_RUNS]
    assert runs[(("shadow.experiment", "generate"), ("shadow.outcome", "ok"), ("shadow.role", "candidate"))] == 2
    assert runs[(("shadow.experiment", "generate"), ("shadow.outcome", "error"), ("shadow.role", "candidate"))] == 2
    drops = points[A.METRIC_CANDIDATE_DROPS]
    assert drops[(("shadow.drop.reason", "disabled"), ("shadow.experiment", "generate"))] == 2


def test_runner_refuses_async_functions_instead_of_starting_a_loop(
    tracer_provider: TracerProvider, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler)

    @shadow.experiment()
    async def generate(config: Config) -> str:
        return "x"

    with pytest.raises(ExperimentError, match="use `async with Shadow.arun"), Shadow.run(generate):
        pass
    with pytest.raises(ExperimentError, match="not an experiment"), Shadow.run(lambda: 1):
        pass


async def test_async_candidates_are_tasks_on_the_callers_loop(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    loops: dict[str, Any] = {}
    shadow = make_shadow(tracer_provider, scheduler)

    @shadow.experiment()
    async def generate(config: Config) -> str:
        await asyncio.sleep(0.01)
        gc.collect()  # the task must survive a collection: it is strongly referenced
        loops[config["model"]] = asyncio.get_running_loop()
        return config["model"]

    assert await generate() == "primary"
    assert "candidate" not in loops  # scheduled, not awaited by the caller
    assert await scheduler.aflush(5)
    assert loops["candidate"] is asyncio.get_running_loop() is loops["primary"]
    roles = spans_by_role(span_exporter)
    assert roles["candidate"][0].attributes[A.SHADOW_OUTCOME] == "ok"
    # the primary span was ended by its candidate's task (PrimaryEnd), complete
    (primary,) = roles["primary"]
    assert primary.attributes[A.SHADOW_OUTCOME] == "ok" and primary.attributes[A.SHADOW_CANDIDATES_SCHEDULED] == 1
    assert primary.end_time <= roles["candidate"][0].start_time


async def test_async_timeouts_errors_and_await_variants(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler, timeout=0.05, configs=[{"m": "p"}, {"m": "slow"}, {"m": "bad"}])

    @shadow.experiment()
    async def generate(config: Config) -> str:
        if config["m"] == "slow":
            await asyncio.sleep(10)
        if config["m"] == "bad":
            raise ValueError("bad candidate")
        return "primary"

    async with Shadow.arun(generate, await_variants=True) as runner:
        result = await runner()
    assert result.main_result.result == "primary"
    assert sorted(v.status for v in result.variant_results) == ["error", "timeout"]


async def test_async_candidates_cancelled_with_their_loop_are_recorded(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    shadow = make_shadow(tracer_provider, scheduler, timeout=30)

    @shadow.experiment()
    async def generate(config: Config) -> str:
        if config["m"] == "candidate":
            await asyncio.sleep(10)
        return "p"

    generate_configs = Shadow(
        configs=[{"m": "p"}, {"m": "candidate"}], tracer_provider=tracer_provider, scheduler=scheduler
    )
    generate = generate_configs.experiment()(generate.__wrapped__)  # type: ignore[attr-defined]

    def in_own_loop() -> None:
        async def main() -> None:
            assert await generate() == "p"

        asyncio.run(main())  # tears the loop down with the candidate still sleeping

    await asyncio.to_thread(in_own_loop)
    outcomes = [s.attributes[A.SHADOW_OUTCOME] for s in spans_by_role(span_exporter)["candidate"]]
    assert outcomes == ["cancelled"]


def test_shutdown_records_pending_candidates_as_cancelled(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    release = threading.Event()
    scheduler = Scheduler(workers=1, max_pending=10)
    shadow = make_shadow(tracer_provider, scheduler, timeout=30)

    @shadow.experiment()
    def generate(config: Config) -> str:
        if config["model"] == "candidate":
            release.wait(30)
        return "x"

    for _ in range(3):
        generate()
    assert not shadow.flush(0.05)
    scheduler.shutdown(0.05)
    outcomes = sorted(s.attributes[A.SHADOW_OUTCOME] for s in spans_by_role(span_exporter)["candidate"])
    assert outcomes == ["cancelled"] * 3
    with Shadow.run(generate, await_variants=True) as runner:
        assert [v.drop_reason for v in runner().variant_results] == ["shutdown"]
    release.set()


def test_a_result_not_awaited_reports_its_pending_candidates_and_waits_later(
    tracer_provider: TracerProvider, scheduler: Scheduler
) -> None:
    release = threading.Event()
    shadow = make_shadow(tracer_provider, scheduler, timeout=30)

    @shadow.experiment()
    def generate(config: Config) -> str:
        if config["model"] == "candidate":
            release.wait(30)
        return config["model"]

    with Shadow.run(generate) as runner:
        result = runner()
    assert result.main_result.result == "primary"
    assert result.pending == 1 and result.variant_results == ()  # not awaited: still running
    release.set()
    (variant,) = result.wait(5)
    assert (variant.status, variant.result) == ("ok", "candidate") and result.pending == 0


class EndRecorder(SpanProcessor):
    """A span processor that notes which thread ended each span."""

    def __init__(self) -> None:
        self.ends: list[tuple[str, int, str]] = []  # (role, span id, thread name)

    def on_end(self, span: Any) -> None:
        self.ends.append((span.attributes.get(A.SHADOW_ROLE), span.context.span_id, threading.current_thread().name))


def test_a_sampled_primary_span_is_ended_off_the_caller_once_with_the_callers_end_time(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    recorder = EndRecorder()
    tracer_provider.add_span_processor(recorder)
    scheduler = Scheduler(workers=2, max_pending=8)
    # a candidate and a replicate: two tasks share one primary, which must end exactly once
    shadow = make_shadow(tracer_provider, scheduler, replicate_rate=1.0)

    @shadow.experiment()
    def generate(fail: bool, config: Config) -> str:
        if fail and config["model"] == "primary":
            raise PrimaryBoom("primary failed")
        return config["model"]

    @make_shadow(tracer_provider, scheduler, sample_rate=0.0).experiment()
    def unsampled(config: Config) -> str:
        return config["model"]

    def wait_for_idle_workers() -> None:  # as in a running service, between requests
        assert scheduler.flush(5)
        deadline = time.monotonic() + 5
        while scheduler.idle_workers < 2 and time.monotonic() < deadline:
            time.sleep(0.005)

    generate(False)  # the first call starts the workers (so it finds none idle and ends its own span)
    wait_for_idle_workers()
    recorder.ends.clear()
    span_exporter.clear()
    assert generate(False) == "primary"
    returned = time.time_ns()
    assert unsampled() == "primary"
    wait_for_idle_workers()
    with pytest.raises(PrimaryBoom):
        generate(True)
    assert scheduler.flush(5)

    ended_by = {sid: thread for role, sid, thread in recorder.ends if role == A.ROLE_PRIMARY}
    assert len([r for r in recorder.ends if r[0] == A.ROLE_PRIMARY]) == 3  # each primary once
    primaries = sorted(spans_by_role(span_exporter)["primary"], key=lambda s: s.start_time)
    ok, plain, failed = primaries
    assert ended_by[ok.context.span_id] == ended_by[failed.context.span_id] == "otel-shadow-worker"
    assert ended_by[plain.context.span_id] == threading.current_thread().name  # unsampled: the caller
    assert ok.end_time <= returned  # the caller's end time, not the worker's
    assert ok.attributes[A.SHADOW_OUTCOME] == "ok" and A.SHADOW_OUTPUT_HASH in ok.attributes
    assert ok.attributes[A.SHADOW_CANDIDATES_SCHEDULED] == 1 and ok.attributes[A.SHADOW_SAMPLED] is True
    assert ok.attributes[A.SHADOW_REPLICATES_SCHEDULED] == 1  # a replicate is not a candidate (coverage)
    assert failed.attributes[A.SHADOW_OUTCOME] == "error" and failed.status.status_code.name == "ERROR"
    scheduler.shutdown(1)


def test_a_primary_whose_candidate_is_cancelled_before_running_still_ends(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, scheduler: Scheduler
) -> None:
    @make_shadow(tracer_provider, scheduler).experiment()
    def generate(config: Config) -> str:
        return config["model"]

    exp = generate.__shadow_experiment__  # type: ignore[attr-defined]
    span = tracer_provider.get_tracer("t").start_span("primary")
    job = ExperimentCandidate(exp, exp.candidates[0], A.ROLE_CANDIDATE)
    task = CandidateTask(job, span.get_span_context(), 5.0, False, ((), {}, None, None))
    ending = task.primary_end = PrimaryEnd(span)
    ending.handed = True  # as the scheduler marks it when it gives it to the tasks
    ending.arm({A.SHADOW_OUTCOME: "ok"}, time.time_ns())
    assert not [s for s in span_exporter.get_finished_spans() if s.name == "primary"]  # handed: not ended here
    assert task.finish(A.OUTCOME_CANCELLED)  # e.g. shutdown before any worker took it
    (ended,) = [s for s in span_exporter.get_finished_spans() if s.name == "primary"]
    assert ended.attributes[A.SHADOW_OUTCOME] == "ok"
    task.primary_end()  # a second caller finds it done: no second end
    assert len([s for s in span_exporter.get_finished_spans() if s.name == "primary"]) == 1


def test_drop_counts_are_exact_under_concurrent_callers() -> None:
    """The drop counter is lock-free on the caller's path; no count may be lost or doubled."""
    from otel_shadow.core.telemetry import Telemetry

    telemetry = Telemetry(TracerProvider())

    def count() -> None:
        for _ in range(10_000):
            telemetry.count_drops("exp", "sampling", 1)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(telemetry._drop_log) < 4096  # folded as it went, not held until read
    assert telemetry.tallies()[0] == {("exp", "sampling"): 80_000}
