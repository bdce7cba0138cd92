"""Scheduled background work (candidates, replicates) and the one place each is finished.

A task is finished exactly once, by whoever gets there first: the worker that ran it (ok, error),
the watchdog (timeout), a waiter whose patience ran out, or the exit handler (cancelled). Finishing
ends the candidate's span, records the result, counts the outcome and wakes waiters. Nothing here
ever raises into the caller: every failure becomes an outcome.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Span, SpanContext, Status, StatusCode, TraceFlags, TraceState

from .. import attributes as A
from .comparison import Comparison
from .content import fingerprint, render_content
from .observation import ErrorInfo, VariantResult
from .stacktrace import record_exception
from .telemetry import candidate_context

if TYPE_CHECKING:
    from .experiment import Experiment
    from .scheduler import Scheduler

__all__ = ["IN_CANDIDATE", "NO_OUTPUT", "CandidateTask", "PrimaryEnd", "ScheduledTask"]

logger = logging.getLogger("otel_shadow")

# One lock for every task's finish-once check (held for a flag test): a lock per task would be one
# more object per queued candidate for the garbage collector to count and traverse.
_FINISH_LOCK = threading.Lock()
_NO_KWARGS: dict[str, Any] = {}  # shared, never mutated
NO_OUTPUT: Any = object()
"""A primary's output when it has none to compare with (it raised, or its stream did not complete)."""

IN_CANDIDATE: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_shadow_in_candidate", default=False)
"""True inside a candidate: an experiment called there runs only its primary (no shadow of a shadow)."""


class PrimaryEnd:
    """Ends a primary span once, in the background: on an idle worker or in its first task.

    The caller records the end time and the end attributes; setting them and ``span.end()``
    (which runs every span processor, several µs) happen off the caller's path. Whoever gets here
    first does it (``list.pop`` is atomic): the worker it was handed to (``Scheduler.defer``) or
    one of the primary's tasks; the others find it done.
    """

    __slots__ = ("_pending",)

    def __init__(self, span: Span, attributes: dict[str, Any], end_time: int) -> None:
        self._pending = [(span, attributes, end_time)]

    def __call__(self) -> None:
        try:
            span, attributes, end_time = self._pending.pop()
        except IndexError:
            return
        try:
            span.set_attributes(attributes)
            span.end(end_time)
        except Exception:  # instrumentation must never break anything
            logger.debug("otel-shadow: ending the primary span failed", exc_info=True)


class ScheduledTask:
    """A unit of background work with exactly one recorded outcome (the scheduler runs these).

    Subclasses provide ``_start`` (open the span, attach the context), ``_call_sync`` /
    ``_call_async`` (do the work) and ``_record`` (end the span, build ``self.result``).
    """

    __slots__ = (
        "timeout",
        "context",
        "enqueued_ns",
        "started_ns",
        "result",
        "stuck",
        "_finishing",
        "_event",
        "_scheduler",
        "atask",
        "primary_end",
        "_primary_trace_id",
        "_primary_span_id",
        "_primary_flags",
        "_primary_state",
    )

    def __init__(self, timeout: float, want_event: bool) -> None:
        self.timeout = timeout
        self.context = contextvars.copy_context()
        self.enqueued_ns = time.perf_counter_ns()
        self.started_ns = 0
        self.result: VariantResult | None = None
        self.stuck = False
        self._finishing = False
        self._event = threading.Event() if want_event else None
        self._scheduler: Scheduler | None = None  # the one that admitted it (told when it finishes)
        self.atask: asyncio.Task[None] | None = None
        self.primary_end: PrimaryEnd | None = None  # ended before this task starts or finishes
        self._primary_trace_id = 0  # not valid until _hold_primary
        self._primary_span_id = 0
        self._primary_flags = 0
        self._primary_state: TraceState | None = None

    @property
    def deadline_ns(self) -> int:
        """When a started task times out (``perf_counter_ns``)."""
        return self.started_ns + int(self.timeout * 1e9)

    # --- the primary it shadows ---------------------------------------------------------------
    def _hold_primary(self, primary: SpanContext) -> None:
        """Keep what identifies the primary span, not its ``SpanContext``: a queued task should keep
        alive as few objects as it can (each one the garbage collector counts, and its collections
        run in whichever thread allocates next, often the caller's)."""
        self._primary_trace_id = primary.trace_id
        self._primary_span_id = primary.span_id
        self._primary_flags = int(primary.trace_flags)
        self._primary_state = primary.trace_state

    def _primary_context(self) -> SpanContext:
        """The primary's span context again (on the worker, when the candidate's span starts)."""
        if not self._primary_span_id:
            return INVALID_SPAN_CONTEXT
        flags = TraceFlags(self._primary_flags)
        return SpanContext(self._primary_trace_id, self._primary_span_id, False, flags, self._primary_state)

    # --- hooks ---------------------------------------------------------------------------------
    def _start(self) -> object:
        """Open the span and attach the task's context; return the detach token."""
        raise NotImplementedError

    def _call_sync(self) -> Any:
        raise NotImplementedError

    async def _call_async(self) -> Any:
        raise NotImplementedError

    def _record(self, outcome: str, value: Any, exc: BaseException | None, error: ErrorInfo | None) -> None:
        raise NotImplementedError

    def _fallback_result(self, outcome: str) -> VariantResult:
        raise NotImplementedError

    def _outcome_error(self, outcome: str, error: ErrorInfo | None) -> ErrorInfo | None:
        """The error a timeout or a cancellation stands for, when none was given."""
        if outcome == A.OUTCOME_TIMEOUT:
            return error or ErrorInfo("TimeoutError", f"candidate exceeded its timeout of {self.timeout:g}s")
        if outcome == A.OUTCOME_CANCELLED:
            return error or ErrorInfo("CancelledError", "candidate cancelled before it finished")
        return error

    def _closing_attributes(
        self, span: Span, outcome: str, exc: BaseException | None, error: ErrorInfo | None
    ) -> tuple[dict[str, Any], ErrorInfo | None]:
        """What every finished span gets: the outcome attributes (to be set in one call with the
        rest), the exception event and the error status; returns them with the error they stand for.
        """
        attrs: dict[str, Any] = {A.SHADOW_OUTCOME: outcome}
        if exc is not None:
            error = ErrorInfo.of(exc)
            record_exception(span, exc)
            attrs[A.ERROR_TYPE] = type(exc).__qualname__
        error = self._outcome_error(outcome, error)
        if outcome == A.OUTCOME_TIMEOUT:
            attrs[A.ERROR_TYPE] = "timeout"
        if outcome != A.OUTCOME_OK:
            span.set_status(Status(StatusCode.ERROR, error.message if error else outcome))
        return attrs, error

    @staticmethod
    def _output_attributes(
        attrs: dict[str, Any],
        output: Any,
        primary_hash: str | None,
        primary_output: Any = NO_OUTPUT,
        comparison: Comparison | None = None,
        on_metric_error: Callable[[str], None] | None = None,
    ) -> None:
        """Into ``attrs``: the output's fingerprint, whether it matches the primary's, and the
        comparison metrics against the primary's output (``shadow.metric.*``). The one place both
        decorated experiments and zero-code rules compare a candidate or replicate with its primary."""
        digest, length = fingerprint(output)
        attrs[A.SHADOW_OUTPUT_HASH] = digest
        attrs[A.SHADOW_OUTPUT_LENGTH] = length
        if primary_hash is not None:
            attrs[A.SHADOW_OUTPUT_MATCH] = digest == primary_hash
        if comparison and primary_output is not NO_OUTPUT:
            attrs.update(comparison.attributes(primary_output, output, on_metric_error))

    # --- running ---------------------------------------------------------------------------------
    def run_sync(self, watch: Callable[[ScheduledTask], None]) -> None:
        """Run on a worker thread, inside the caller's copied contextvars."""
        if self.primary_end is not None:
            self.primary_end()
        if self._finishing:  # finished (cancelled) while it waited in the queue
            return
        if time.perf_counter_ns() - self.enqueued_ns > self.timeout * 1e9:
            self.finish(A.OUTCOME_CANCELLED, error=ErrorInfo("QueueTimeout", "not started within the timeout"))
            return
        self.context.run(self._run_sync_inner, watch)

    def _run_sync_inner(self, watch: Callable[[ScheduledTask], None]) -> None:
        token = None
        try:
            self.started_ns = time.perf_counter_ns()
            IN_CANDIDATE.set(True)
            token = self._start()
            watch(self)
            value = self._call_sync()
        except BaseException as exc:  # a candidate's failure is an outcome, never raised
            self.finish(A.OUTCOME_ERROR, exc=exc)
        else:
            self.finish(A.OUTCOME_OK, value=value)
        finally:
            if token is not None:
                otel_context.detach(token)  # type: ignore[arg-type]

    async def run_async(self) -> None:
        """Run as a task on the caller's loop (the task has its own copy of the context)."""
        if self.primary_end is not None:
            self.primary_end()
        token = None
        try:
            self.started_ns = time.perf_counter_ns()
            IN_CANDIDATE.set(True)
            token = self._start()
            value = await asyncio.wait_for(self._call_async(), self.timeout)
        except asyncio.TimeoutError:
            self.finish(A.OUTCOME_TIMEOUT)
        except asyncio.CancelledError:
            self.finish(A.OUTCOME_CANCELLED)
            raise
        except BaseException as exc:
            self.finish(A.OUTCOME_ERROR, exc=exc)
        else:
            self.finish(A.OUTCOME_OK, value=value)
        finally:
            if token is not None:
                otel_context.detach(token)  # type: ignore[arg-type]

    def finish(
        self,
        outcome: str,
        *,
        value: Any = None,
        exc: BaseException | None = None,
        error: ErrorInfo | None = None,
    ) -> bool:
        """Record the final outcome once; later calls do nothing. Returns True if this call did it."""
        if self.primary_end is not None:  # cancelled before it ran: the primary still ends first
            self.primary_end()
        with _FINISH_LOCK:
            if self._finishing:
                return False
            self._finishing = True
        try:
            self._record(outcome, value, exc, error)
        except Exception:  # instrumentation must never break anything
            logger.debug("otel-shadow: recording a candidate outcome failed", exc_info=True)
            if self.result is None:
                self.result = self._fallback_result(outcome)
        if self._event is not None:
            self._event.set()
        if self._scheduler is not None:
            self._scheduler._finished(self)
        return True

    # --- waiting -----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished. With no timeout, wait at most the candidate's own budget (queue + run)."""
        if self.result is not None:
            return True
        if self._event is None:
            raise RuntimeError("this candidate was scheduled without a result handle")
        budget = 2 * self.timeout + 1.0 if timeout is None else timeout
        if not self._event.wait(budget) and timeout is None:
            # stuck behind hung workers past any reasonable bound: record it rather than wait forever
            self.finish(A.OUTCOME_CANCELLED, error=ErrorInfo("QueueTimeout", "not finished within twice the timeout"))
        return self.result is not None

    async def wait_async(self) -> None:
        if self.atask is not None and not self.atask.done():
            await asyncio.wait([self.atask])
        elif self.result is None:
            await asyncio.get_running_loop().run_in_executor(None, self.wait)


class CandidateTask(ScheduledTask):
    """A candidate (or replicate) of a decorated experiment."""

    __slots__ = ("experiment", "spec", "role", "args", "kwargs", "primary_hash", "primary_output", "span", "_kwargs_for_call")

    def __init__(
        self,
        experiment: Experiment,
        spec: Any,
        role: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        primary: SpanContext,
        primary_hash: str | None,
        timeout: float,
        want_event: bool,
        primary_output: Any = NO_OUTPUT,
    ) -> None:
        super().__init__(timeout, want_event)
        self.experiment = experiment
        self.spec = spec
        self.role = role
        self.args = args
        self.kwargs = kwargs or _NO_KWARGS  # the call's own empty dict is freed with the call
        self._hold_primary(primary)
        self.primary_hash = primary_hash
        self.primary_output = primary_output if experiment.comparison else NO_OUTPUT
        self.span: Span | None = None
        self._kwargs_for_call: dict[str, Any] = _NO_KWARGS  # set when it starts

    def _start(self) -> object:
        exp = self.experiment
        attrs = dict(exp.span_attributes(self.spec, self.role))
        attrs[A.SHADOW_QUEUE_MS] = (self.started_ns - self.enqueued_ns) / 1e6
        self.span = exp.telemetry.start_candidate(exp.name, self._primary_context(), attrs)
        token = otel_context.attach(candidate_context(self.span, otel_context.get_current()))
        self._kwargs_for_call = exp.plan.apply(self.spec, self.args, self.kwargs)
        return token

    def _call_sync(self) -> Any:
        return self.experiment.fn(*self.args, **self._kwargs_for_call)

    async def _call_async(self) -> Any:
        return await self.experiment.fn(*self.args, **self._kwargs_for_call)

    def _fallback_result(self, outcome: str) -> VariantResult:
        return VariantResult(None, self.spec.id, self.role, outcome, 0.0)

    def _record(self, outcome: str, value: Any, exc: BaseException | None, error: ErrorInfo | None) -> None:
        exp = self.experiment
        now = time.perf_counter_ns()
        elapsed_ms = (now - self.started_ns) / 1e6 if self.started_ns else 0.0
        if self.span is None:  # never started: a span still records that it was scheduled
            attrs = dict(exp.span_attributes(self.spec, self.role))
            start_wall = time.time_ns() - (now - self.enqueued_ns)
            self.span = exp.telemetry.start_candidate(exp.name, self._primary_context(), attrs, start_time=start_wall)
        span = self.span
        attrs, error = self._closing_attributes(span, outcome, exc, error)  # set below in one call
        if outcome == A.OUTCOME_OK:
            self._output_attributes(
                attrs, value, self.primary_hash, self.primary_output, exp.comparison, exp.count_metric_error
            )
            if exp.capture_content:
                attrs[A.SHADOW_OUTPUT] = render_content(value, exp.redact)
        if exp.capture_content:
            attrs[A.SHADOW_INPUT] = render_content({"args": self.args, "kwargs": self.kwargs}, exp.redact)
        span.set_attributes(attrs)
        span.end()
        exp.telemetry.count_run(exp.name, self.role, outcome)
        self.result = VariantResult(
            result=value if outcome == A.OUTCOME_OK else None,
            config_id=self.spec.id,
            role=self.role,
            status=outcome,
            execution_time_ms=elapsed_ms,
            error=error,
            config=dict(self.spec.data),
        )
        # drop references to the caller's arguments as soon as they are not needed
        self.args = ()
        self.kwargs = _NO_KWARGS
        self.primary_output = NO_OUTPUT

