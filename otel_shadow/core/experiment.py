"""``Shadow`` and its experiments: the primary answers the caller, candidates run in the background.

    shadow = Shadow(configs=[{"model": "gpt-4"}, {"model": "gpt-5-beta"}])   # index 0 = primary

    @shadow.experiment()
    def generate(prompt: str, config: Config) -> str: ...

    generate("hi")          # the primary's value; the candidate is scheduled after it returns

When candidates start: after the primary returns (or raises). The primary then has the machine to
itself: no candidate competes with it for the GIL, the connection pool or the provider's rate
limit while the user waits, and the candidate's span is created knowing the primary's outcome and
output fingerprint. Dispatch costs the caller one queue put per candidate, and no lock.

The primary span starts without attributes and gets all of them in one ``set_attributes`` call at
its end: the experiment's constant attributes (built once) with the call's outcome, fingerprint
and coverage. The OpenTelemetry SDK's cost per batch of attributes is paid once, not twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextvars import Token
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, Status, StatusCode

from .. import attributes as A
from ..environment_variables import (
    OTEL_SHADOW_CAPTURE_CONTENT,
    OTEL_SHADOW_SAMPLE_RATE,
    OTEL_SHADOW_TIMEOUT,
    env_bool,
    env_float,
)
from ..errors import ConfigError, ExperimentError
from .canary import CanarySpec
from .candidate import NO_OUTPUT, CandidateTask, closing_attributes, output_attributes
from .comparison import Comparison
from .config import ConfigSpec, load_configs
from .content import Redactor, render_content
from .experiment_canary import canary_wrapper
from .failures import internal_failure
from .injection import InjectionPlan
from .limits import Limits
from .observation import ErrorInfo, ShadowResult, VariantResult
from .sampling import Sampler
from .scheduler import Scheduler, default_scheduler
from .shadow_call import ShadowPlan, primary_end_attributes
from .stacktrace import record_exception
from .tasks import TaskView
from .telemetry import Telemetry, candidate_context

__all__ = ["AsyncRunner", "Called", "Experiment", "ExperimentCandidate", "Runner", "Shadow"]

logger = logging.getLogger("otel_shadow")

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")

_EXPERIMENT_ATTR = "__shadow_experiment__"
_NO_KWARGS: dict[str, Any] = {}  # shared, never mutated


class Shadow:
    """A set of configs (the first is the primary) and the experiments that run them.

    Args:
        configs: dicts, pydantic model instances, YAML file paths or folders; index 0 is the primary.
        sample_rate: fraction of calls whose candidates run (default ``OTEL_SHADOW_SAMPLE_RATE`` or 1.0).
        sample_key: ``f(*args, **kwargs) -> key``; the same key always gets the same decision
            (default: the trace id, so a whole trace is in or out).
        timeout: seconds a candidate may take (default ``OTEL_SHADOW_TIMEOUT`` or 30).
        replicate_rate: fraction of sampled calls that also re-run the primary config as a
            ``replicate``, to measure the noise floor (how often the primary disagrees with itself).
        capture_content: record inputs and outputs on spans (default ``OTEL_SHADOW_CAPTURE_CONTENT``, off).
        redact: ``f(text) -> text`` applied to captured content before it reaches a span.
        metrics: comparison metrics of each candidate and replicate with the primary, computed in
            the background and recorded as ``shadow.metric.<name>`` (default: normalized match,
            similarity, JSON validity, length ratio; ``[]`` for none; see ``core.comparison``).
        tracer_provider / meter_provider: default the global ones; otel-shadow never installs its own.
        scheduler: the pool candidates run on (default: one per process).
        ends_at / max_duration / max_calls: time-bound experiments (``core.limits``): an end time
            (an aware datetime or ISO 8601 string), seconds from the experiment's creation, or a
            number of shadowed calls; past any of them, each experiment schedules no candidates
            and its primary spans record the drop reason ``expired``. Each experiment counts apart.
        canary: opt-in, ``{"fraction": 0.05, "key": "user" | "baggage:<name>" | "request:<field>"}``:
            that sticky share of callers is answered by the FIRST candidate config, role ``canary``
            (``core.experiment_canary``). None (the default): every caller gets the primary.
    """

    def __init__(
        self,
        configs: Iterable[Any] | Any,
        *,
        sample_rate: float | None = None,
        sample_key: Callable[..., Any] | None = None,
        timeout: float | None = None,
        replicate_rate: float = 0.0,
        capture_content: bool | None = None,
        redact: Redactor | None = None,
        metrics: Iterable[Any] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        scheduler: Scheduler | None = None,
        ends_at: datetime | str | None = None,
        max_duration: float | None = None,
        max_calls: int | None = None,
        canary: Mapping[str, Any] | None = None,
    ) -> None:
        Limits.of("Shadow", ends_at, max_duration, max_calls)  # validate now, at construction
        self.canary = CanarySpec.of(canary, "Shadow(canary=...)")
        self.limits: tuple[datetime | str | None, float | None, int | None] = (ends_at, max_duration, max_calls)
        self.specs: list[ConfigSpec] = load_configs(configs)
        if not self.specs:
            raise ConfigError("Shadow needs at least one config (the primary); got none")
        ids = [s.id for s in self.specs]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise ConfigError(
                f"configs {sorted(duplicates)} appear more than once; each config must differ "
                "(or carry a distinct 'config_id')"
            )
        if self.canary is not None and len(self.specs) < 2:
            raise ConfigError("Shadow(canary=...) serves the first candidate config; add one after the primary")
        self.sample_rate = sample_rate if sample_rate is not None else env_float(OTEL_SHADOW_SAMPLE_RATE, 1.0)
        Sampler(self.sample_rate, "")  # validate now, at construction
        self.sample_key = sample_key
        self.timeout = timeout if timeout is not None else env_float(OTEL_SHADOW_TIMEOUT, 30.0)
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds; got {self.timeout!r}")
        if not 0.0 <= replicate_rate <= 1.0:
            raise ConfigError(f"replicate_rate {replicate_rate!r} is outside 0.0–1.0")
        self.replicate_rate = replicate_rate
        self.capture_content = capture_content if capture_content is not None else env_bool(OTEL_SHADOW_CAPTURE_CONTENT)
        self.redact = redact
        self.comparison = Comparison.of(metrics, "Shadow(metrics=...)")
        self.telemetry = Telemetry(tracer_provider, meter_provider)
        self._scheduler = scheduler

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler if self._scheduler is not None else default_scheduler()

    @property
    def primary(self) -> ConfigSpec:
        return self.specs[0]

    @property
    def candidates(self) -> list[ConfigSpec]:
        return self.specs[1:]

    def experiment(
        self,
        name: str | None = None,
        *,
        sample_rate: float | None = None,
        sample_key: Callable[..., Any] | None = None,
        timeout: float | None = None,
        metrics: Iterable[Any] | None = None,
        ends_at: datetime | str | None = None,
        max_duration: float | None = None,
        max_calls: int | None = None,
        canary: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Decorate a function (sync or async) as an experiment over this Shadow's configs.

        ``metrics`` replaces the Shadow's comparison metrics for this experiment; ``ends_at``,
        ``max_duration`` and ``max_calls`` replace the Shadow's limits (each one given); ``canary`` replaces its canary."""
        own_canary = self.canary if canary is None else CanarySpec.of(canary, "experiment(canary=...)")
        if own_canary is not None and not self.candidates:
            raise ConfigError("experiment(canary=...) serves the first candidate config; the Shadow has none")
        shared_end, shared_duration, shared_calls = self.limits
        limits = (
            shared_end if ends_at is None else ends_at,
            shared_duration if max_duration is None else max_duration,
            shared_calls if max_calls is None else max_calls,
        )

        def decorate(fn: F) -> F:
            exp = Experiment(
                self,
                fn,
                name=name,
                sample_rate=self.sample_rate if sample_rate is None else sample_rate,
                sample_key=sample_key if sample_key is not None else self.sample_key,
                timeout=self.timeout if timeout is None else timeout,
                comparison=self.comparison if metrics is None else Comparison.of(metrics, "experiment(metrics=...)"),
                limits=limits,
                canary=own_canary,
            )
            return exp.wrapper  # type: ignore[return-value]

        return decorate

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every scheduled sync candidate has an outcome (True if all did in time)."""
        return self.scheduler.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """Await the candidates running on this event loop, then the sync ones."""
        return await self.scheduler.aflush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop scheduling, give pending candidates ``timeout`` seconds, record the rest as cancelled."""
        self.scheduler.shutdown(timeout)

    # --- runners: the seed's API ---------------------------------------------------------------
    @staticmethod
    @contextlib.contextmanager
    def run(fn: Callable[..., R], await_variants: bool = False) -> Iterator[Runner[R]]:
        """``with Shadow.run(fn) as runner: result = runner(...)`` → a ``ShadowResult``."""
        exp = _experiment_of(fn)
        if exp.is_async:
            raise ExperimentError(
                f"{exp.name} is async; use `async with Shadow.arun({exp.fn.__name__}) as runner` "
                "(otel-shadow never starts an event loop per call)"
            )
        yield Runner(exp, await_variants)

    @staticmethod
    @contextlib.asynccontextmanager
    async def arun(fn: Callable[..., Any], await_variants: bool = False) -> AsyncIterator[AsyncRunner]:
        """``async with Shadow.arun(fn) as runner: result = await runner(...)``."""
        yield AsyncRunner(_experiment_of(fn), await_variants)


def _experiment_of(fn: Callable[..., Any]) -> Experiment:
    exp = getattr(fn, _EXPERIMENT_ATTR, None)
    if not isinstance(exp, Experiment):
        raise ExperimentError(
            f"{getattr(fn, '__qualname__', fn)!r} is not an experiment; decorate it with @shadow.experiment() first"
        )
    return exp


class Experiment:
    """One decorated function over one Shadow's configs: the primary path and candidate dispatch."""

    def __init__(
        self,
        shadow: Shadow,
        fn: Callable[..., Any],
        *,
        name: str | None,
        sample_rate: float,
        sample_key: Callable[..., Any] | None,
        timeout: float,
        comparison: Comparison | None = None,
        limits: tuple[datetime | str | None, float | None, int | None] = (None, None, None),
        canary: CanarySpec | None = None,
    ) -> None:
        if not callable(fn):
            raise ExperimentError(f"@experiment() decorates functions; got {type(fn).__name__}")
        self.shadow = shadow
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__qualname__", repr(fn)))
        self.is_async = inspect.iscoroutinefunction(fn)
        self.plan = InjectionPlan(fn, shadow.specs)
        self.sampler = Sampler(sample_rate, self.name)
        self.sample_key = sample_key
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds; got {timeout!r}")
        self.timeout = timeout
        self.telemetry = shadow.telemetry
        self.capture_content = shadow.capture_content
        self.redact = shadow.redact
        self.comparison = shadow.comparison if comparison is None else comparison
        self._compares = bool(self.comparison)  # candidates get the primary's output to compare with
        self.primary = shadow.primary
        self.candidates = shadow.candidates
        self.shadow_plan = ShadowPlan(
            self.name,
            self.telemetry,
            self.sampler,
            len(self.candidates),
            shadow.replicate_rate,
            Limits.of(self.name, *limits),
        )
        self._work_specs = [*self.candidates, self.primary]  # by position in ShadowPlan.roles()
        self._jobs = [ExperimentCandidate(self, spec, A.ROLE_CANDIDATE) for spec in self.candidates]
        self._jobs.append(ExperimentCandidate(self, self.primary, A.ROLE_REPLICATE))
        self._attrs: dict[tuple[str, str], dict[str, Any]] = {}
        for spec in shadow.specs:
            for role in (A.ROLE_PRIMARY, A.ROLE_CANDIDATE, A.ROLE_REPLICATE):
                self._attrs[(spec.id, role)] = self._make_attrs(spec, role)
        self._primary_attrs = self._attrs[(self.primary.id, A.ROLE_PRIMARY)]
        self._scheduler: Scheduler | None = shadow._scheduler
        self.canary = canary
        self.wrapper = self._make_wrapper()

    def _make_attrs(self, spec: ConfigSpec, role: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            A.SHADOW_EXPERIMENT: self.name,
            A.SHADOW_ROLE: role,
            A.SHADOW_CONFIG_ID: spec.id,
        }
        for key, value in spec.flat.items():
            attrs[A.SHADOW_CONFIG_PREFIX + key] = value
        if role != A.ROLE_PRIMARY:
            attrs[A.SHADOW_PRIMARY_CONFIG_ID] = self.shadow.primary.id
        return attrs

    def count_metric_error(self, metric: str) -> None:
        self.telemetry.count_metric_error(self.name, metric)

    def span_attributes(self, spec: ConfigSpec, role: str) -> Mapping[str, Any]:
        return self._attrs[(spec.id, role)]

    def _make_wrapper(self) -> Callable[..., Any]:
        fn = self.fn
        if self.is_async:

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.call_async(args, kwargs)

            wrapper: Callable[..., Any] = async_wrapper
        else:

            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return self.call_sync(args, kwargs)

            wrapper = sync_wrapper
        if self.canary is not None:  # opt-in: without it the caller's path has no canary code at all
            wrapper = canary_wrapper(self, self.canary, wrapper)
        setattr(wrapper, _EXPERIMENT_ATTR, self)
        return wrapper

    # --- the drivers: the call itself, sync or async; everything else is shared below ------------
    def call_sync(self, args: tuple[Any, ...], kwargs: dict[str, Any], called: Called | None = None) -> Any:
        """Call the experiment; returns the primary's value. A runner passes ``called`` to be filled."""
        call = self._open(args, kwargs, called)
        try:
            value = self.fn(*args, **self.plan.apply(self.primary, args, kwargs))
        except BaseException as exc:
            self._finish(call, NO_OUTPUT, exc, None)
            raise
        return self._finish(call, value, None, None)

    async def call_async(self, args: tuple[Any, ...], kwargs: dict[str, Any], called: Called | None = None) -> Any:
        """Await the experiment; returns the primary's value. A runner passes ``called`` to be filled."""
        call = self._open(args, kwargs, called)
        loop = asyncio.get_running_loop()
        try:
            value = await self.fn(*args, **self.plan.apply(self.primary, args, kwargs))
        except BaseException as exc:
            self._finish(call, NO_OUTPUT, exc, loop)
            raise
        return self._finish(call, value, None, loop)

    # --- the shared call: open, decide, end, schedule --------------------------------------------
    def _open(self, args: tuple[Any, ...], kwargs: dict[str, Any], called: Called | None) -> _Open:
        """Start the primary span, decide sampling from its trace id (a child span shares its
        parent's), and make the span current for the primary's own call."""
        span = self.telemetry.start_span(self.name)  # its attributes are set once, at its end
        ctx = span.get_span_context()
        plan = self.shadow_plan
        if not plan.has_work:
            reason = None
        elif self.sample_key is not None:
            reason = plan.sample_key(self.sample_key, args, kwargs)
        else:
            reason = plan.sample(ctx)
        token = otel_context.attach(trace.set_span_in_context(span))
        if called is not None:  # a runner's call: timed for its ShadowResult
            called.started_ns = time.perf_counter_ns()
        return span, ctx, reason, args, kwargs, token, called

    def _finish(
        self, call: _Open, value: Any, exc: BaseException | None, loop: asyncio.AbstractEventLoop | None
    ) -> Any:
        """End the primary (it returned ``value``, or raised ``exc``), schedule its work; return ``value``.

        Unsampled (the common call): the precomputed coverage attributes, and the caller ends the
        span. Sampled: the work is scheduled (never blocking) and the span is ended off the
        caller's path once a task is admitted (``ShadowPlan.schedule``): ``span.end()`` runs every
        span processor.
        """
        span, ctx, reason, args, kwargs, token, called = call
        otel_context.detach(token)
        if exc is None:
            if called is not None:
                called.value = value
                called.main = self._main_result(value, called.started_ns)
            try:
                end_attrs = primary_end_attributes(A.OUTCOME_OK, value, None, self._primary_attrs)
                if self.capture_content:
                    end_attrs[A.SHADOW_OUTPUT] = render_content(value, self.redact)
                    end_attrs[A.SHADOW_INPUT] = render_content({"args": args, "kwargs": kwargs}, self.redact)
            except Exception as failure:  # a fingerprint must never cost the user their answer
                internal_failure("primary_output", failure, span)
                end_attrs = {**self._primary_attrs, A.SHADOW_OUTCOME: A.OUTCOME_OK}
        else:
            end_attrs = self._primary_failed(span, exc, self._primary_attrs)
        plan = self.shadow_plan
        if reason is not None or not plan.has_work:  # unsampled: the common call
            if reason is not None:
                end_attrs.update(plan.unsampled[reason])
                if called is not None:
                    called.dropped = [self._dropped_result(s, A.ROLE_CANDIDATE, reason) for s in self.candidates]
            span.set_attributes(end_attrs)  # one call: the SDK takes the span lock once
            span.end()
            return value
        # sampled: build the work, schedule it through the plan, end the span if nobody else will
        handed = False
        try:
            roles = plan.roles()
            payload = (
                args,
                kwargs or _NO_KWARGS,
                end_attrs.get(A.SHADOW_OUTPUT_HASH),
                value if self._compares else NO_OUTPUT,
            )
            collect = called is not None
            tasks = []
            for job in self._jobs[: len(roles)]:
                tasks.append(CandidateTask(job, ctx, self.timeout, collect, payload))
            scheduler = self._scheduler
            if scheduler is None:  # the process-wide one, resolved on the first sampled call
                scheduler = self._scheduler = self.shadow.scheduler
            reasons, handed = plan.schedule(scheduler, roles, tasks, end_attrs, span, loop)
            if called is not None:  # a runner's call: the tasks to wait for, the work not run
                called.tasks = [task for task, why in zip(tasks, reasons) if why is None]
                called.dropped = [
                    self._dropped_result(spec, role, why)
                    for spec, role, why in zip(self._work_specs, roles, reasons)
                    if why is not None
                ]
        except Exception as exc:  # scheduling trouble must never reach the caller
            internal_failure("schedule", exc, span)
        if not handed:  # no worker idle, or the scheduling failed: the caller ends the span
            span.set_attributes(end_attrs)
            span.end()
        return value

    def _main_result(self, value: Any, started_ns: int) -> VariantResult:
        elapsed_ms = (time.perf_counter_ns() - started_ns) / 1e6
        return VariantResult(
            value, self.primary.id, A.ROLE_PRIMARY, A.OUTCOME_OK, elapsed_ms, config=dict(self.primary.data)
        )

    def _primary_failed(
        self, span: Span, exc: BaseException, constants: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record the primary's exception on its span; its end attributes (after ``constants``)."""
        try:
            record_exception(span, exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            if isinstance(exc, TypeError):
                hint = self.plan.explain_missing(exc)
                if hint is not None:
                    logger.warning("otel-shadow: %s", hint)
        except Exception as failure:
            internal_failure("primary_error", failure, span)
        return primary_end_attributes(A.OUTCOME_ERROR, NO_OUTPUT, exc, constants)

    @staticmethod
    def _dropped_result(spec: ConfigSpec, role: str, reason: str) -> VariantResult:
        return VariantResult(None, spec.id, role, A.OUTCOME_DROPPED, 0.0, drop_reason=reason, config=dict(spec.data))


_Open = tuple[Span, SpanContext, "str | None", tuple[Any, ...], dict[str, Any], "Token[Context]", "Called | None"]
"""A call in flight, from ``_open`` to its end: (primary span, its context, drop reason or None,
args, kwargs, context token, the runner's ``Called`` or None). A plain tuple: the caller's path allocates no
object of ours per call."""


@dataclass(slots=True)
class Called:
    """What a runner's call gives back: the primary's value and result, the work scheduled and not."""

    value: Any = None
    main: VariantResult | None = None  # the primary's result
    tasks: list[CandidateTask] = field(default_factory=list)  # the work scheduled
    dropped: list[VariantResult] = field(default_factory=list)  # the work not run
    started_ns: int = 0


class ExperimentCandidate:
    """What a candidate or replicate of a decorated experiment does: call the function with its
    config. One per config and role, shared by every call's task; what differs per call (the
    arguments, the primary's output and fingerprint) is the task's ``payload``."""

    __slots__ = ("experiment", "spec", "role")

    def __init__(self, experiment: Experiment, spec: ConfigSpec, role: str) -> None:
        self.experiment = experiment
        self.spec = spec
        self.role = role

    def start(self, task: TaskView) -> object:
        exp = self.experiment
        attrs = dict(exp.span_attributes(self.spec, self.role))
        attrs[A.SHADOW_QUEUE_MS] = (task.started_ns - task.enqueued_ns) / 1e6
        task.span = span = exp.telemetry.start_candidate(exp.name, task.primary_context(), attrs)
        return otel_context.attach(candidate_context(span, otel_context.get_current()))

    def call(self, task: TaskView) -> Any:
        args, kwargs = task.payload[0], task.payload[1]
        return self.experiment.fn(*args, **self.experiment.plan.apply(self.spec, args, kwargs))

    async def acall(self, task: TaskView) -> Any:
        args, kwargs = task.payload[0], task.payload[1]
        return await self.experiment.fn(*args, **self.experiment.plan.apply(self.spec, args, kwargs))

    def fallback(self, task: TaskView, outcome: str) -> VariantResult:
        return VariantResult(None, self.spec.id, self.role, outcome, 0.0)

    def record(
        self, task: TaskView, outcome: str, value: Any, exc: BaseException | None, error: ErrorInfo | None
    ) -> VariantResult:
        exp = self.experiment
        args, kwargs, primary_hash, primary_output = task.payload
        task.payload = _SPENT  # the caller's arguments and output are let go as soon as they are not needed
        now = time.perf_counter_ns()
        elapsed_ms = (now - task.started_ns) / 1e6 if task.started_ns else 0.0
        span = task.span
        if span is None:  # never started: a span still records that it was scheduled
            attrs = dict(exp.span_attributes(self.spec, self.role))
            start_wall = time.time_ns() - (now - task.enqueued_ns)
            span = task.span = exp.telemetry.start_candidate(
                exp.name, task.primary_context(), attrs, start_time=start_wall
            )
        attrs, error = closing_attributes(span, outcome, exc, error)  # set below in one call
        if outcome == A.OUTCOME_OK:
            output_attributes(attrs, value, primary_hash, primary_output, exp.comparison, exp.count_metric_error)
            if exp.capture_content:
                attrs[A.SHADOW_OUTPUT] = render_content(value, exp.redact)
        if exp.capture_content:
            attrs[A.SHADOW_INPUT] = render_content({"args": args, "kwargs": kwargs}, exp.redact)
        span.set_attributes(attrs)
        span.end()
        exp.telemetry.count_run(exp.name, self.role, outcome)
        return VariantResult(
            result=value if outcome == A.OUTCOME_OK else None,
            config_id=self.spec.id,
            role=self.role,
            status=outcome,
            execution_time_ms=elapsed_ms,
            error=error,
            config=dict(self.spec.data),
        )


_Payload = tuple[tuple[Any, ...], dict[str, Any], "str | None", Any]
_SPENT: _Payload = ((), {}, None, NO_OUTPUT)


class Runner(Generic[R]):
    """Calls a sync experiment and returns a ``ShadowResult`` (yielded by ``Shadow.run``)."""

    def __init__(self, experiment: Experiment, await_variants: bool) -> None:
        self.experiment = experiment
        self.await_variants = await_variants

    def __call__(self, *args: Any, **kwargs: Any) -> ShadowResult:
        called = Called()
        self.experiment.call_sync(args, kwargs, called)
        main, tasks, dropped = called.main, called.tasks, called.dropped
        assert main is not None  # a runner's call is timed
        if self.await_variants:
            for task in tasks:
                task.wait()
            return ShadowResult(
                main, tuple(t.result for t in tasks if t.result) + tuple(dropped), tasks, tuple(dropped)
            )
        return ShadowResult(main, tuple(dropped), tasks, tuple(dropped))


class AsyncRunner:
    """Awaits an experiment (async or sync) and returns a ``ShadowResult`` (yielded by ``Shadow.arun``)."""

    def __init__(self, experiment: Experiment, await_variants: bool) -> None:
        self.experiment = experiment
        self.await_variants = await_variants

    async def __call__(self, *args: Any, **kwargs: Any) -> ShadowResult:
        exp = self.experiment
        called = Called()
        if exp.is_async:
            await exp.call_async(args, kwargs, called)
        else:
            exp.call_sync(args, kwargs, called)
        main, tasks, dropped = called.main, called.tasks, called.dropped
        assert main is not None
        result = ShadowResult(main, tuple(dropped), tasks, tuple(dropped))
        if self.await_variants:
            if exp.is_async:
                await result.wait_async()
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, result.wait)
            return ShadowResult(
                main, tuple(t.result for t in tasks if t.result) + tuple(dropped), tasks, tuple(dropped)
            )
        return result
