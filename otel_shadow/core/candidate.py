"""Scheduled background work (candidates, replicates) and the one place each is finished.

A task is finished exactly once, by whoever gets there first: the worker that ran it (ok, error),
the watchdog (timeout), a waiter whose patience ran out, or the exit handler (cancelled). Finishing
has the task's job end the candidate's span and build the result, then wakes waiters and tells
the scheduler. Nothing here ever raises into the caller: every failure becomes an outcome.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Span, SpanContext, Status, StatusCode, TraceFlags, TraceState

from .. import attributes as A
from .comparison import Comparison
from .content import fingerprint
from .failures import internal_failure
from .observation import ErrorInfo, VariantResult
from .stacktrace import record_exception
from .tasks import Job, Task

__all__ = [
    "IN_CANDIDATE",
    "NO_OUTPUT",
    "CandidateTask",
    "PrimaryEnd",
    "closing_attributes",
    "outcome_error",
    "output_attributes",
]

# One lock for every task's finish-once check (held for a flag test): a lock per task would be one
# more object per queued candidate for the garbage collector to count and traverse.
_FINISH_LOCK = threading.Lock()
NO_OUTPUT: Any = object()
"""A primary's output when it has none to compare with (it raised, or its stream did not complete)."""

IN_CANDIDATE: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_shadow_in_candidate", default=False)
"""True inside a candidate: an experiment called there runs only its primary (no shadow of a shadow)."""


class PrimaryEnd:
    """Ends a primary span once, off the caller's path: on an idle worker or in its first task.

    ``span.end()`` runs every span processor (several µs): with a worker idle, that cost leaves the
    caller's path. It is made before the work is submitted and armed after, with the end
    attributes (they count what was admitted) and the end time the caller took. Whoever runs it
    first once it is armed ends the span (``list.pop`` is atomic); the others find it done. Run
    before it was armed, it leaves a mark, and ``arm`` then ends the span itself. Not handed to
    anyone (``handed``: set by the scheduler), ``arm`` ends the span on the caller.
    """

    __slots__ = ("_span", "_pending", "_early", "handed")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._pending: list[tuple[dict[str, Any], int]] = []
        self._early = False
        self.handed = False

    def arm(self, attributes: dict[str, Any], end_time: int) -> None:
        self._pending.append((attributes, end_time))
        if self._early or not self.handed:
            self()

    def __call__(self) -> None:
        self._early = True  # before the pop: an arm that comes after sees it and ends the span
        try:
            attributes, end_time = self._pending.pop()
        except IndexError:
            return
        span = self._span
        try:
            span.set_attributes(attributes)
            span.end(end_time)
        except Exception as exc:
            internal_failure("end_primary", exc, span)


class CandidateTask:
    """A candidate or replicate on the scheduler: runs its ``Job`` and records one outcome.

    The only task class: decorated experiments and zero-code rules differ in their job
    (``core.tasks.Job``), not here.
    """

    __slots__ = (
        "job",
        "payload",
        "span",
        "timeout",
        "context",
        "enqueued_ns",
        "started_ns",
        "result",
        "stuck",
        "_finishing",
        "_event",
        "on_finish",
        "atask",
        "primary_end",
        "_primary_trace_id",
        "_primary_span_id",
        "_primary_flags",
        "_primary_state",
    )
    _primary_state: TraceState | None

    def __init__(
        self, job: Job, primary: SpanContext | None, timeout: float, want_event: bool, payload: Any = None
    ) -> None:
        self.job = job  # may be shared by many tasks: what differs per call is the payload
        self.payload = payload
        self.span: Span | None = None  # the candidate's span, once its job opened it
        self.timeout = timeout
        self.context = contextvars.copy_context()
        self.enqueued_ns = time.perf_counter_ns()
        self.started_ns = 0
        self.result: VariantResult | None = None
        self.stuck = False
        self._finishing = False
        self._event = threading.Event() if want_event else None
        self.on_finish: Callable[[Task], None] | None = None  # given by the scheduler that admitted it
        self.atask: asyncio.Task[None] | None = None
        self.primary_end: Callable[[], None] | None = None  # run before this task starts or finishes
        # What identifies the primary span, not its SpanContext: a queued task keeps alive as few
        # objects as it can (each one the garbage collector counts, in whichever thread allocates next).
        if primary is not None:  # its declared 6-tuple: no Python call per field
            self._primary_trace_id, self._primary_span_id, _, flags, self._primary_state, _ = primary
            self._primary_flags = int(flags)
        else:
            self._primary_trace_id = self._primary_span_id = self._primary_flags = 0
            self._primary_state = None

    @property
    def deadline_ns(self) -> int:
        """When a started task times out (``perf_counter_ns``)."""
        return self.started_ns + int(self.timeout * 1e9)

    def primary_context(self) -> SpanContext:
        """The primary's span context again (on the worker, when the candidate's span starts)."""
        if not self._primary_span_id:
            return INVALID_SPAN_CONTEXT
        flags = TraceFlags(self._primary_flags)
        return SpanContext(self._primary_trace_id, self._primary_span_id, False, flags, self._primary_state)

    # --- running ---------------------------------------------------------------------------------
    def run_sync(self, watch: Callable[[Task], None]) -> None:
        """Run on a worker thread, inside the caller's copied contextvars."""
        if self.primary_end is not None:
            self.primary_end()
        if self._finishing:  # finished (cancelled) while it waited in the queue
            return
        if time.perf_counter_ns() - self.enqueued_ns > self.timeout * 1e9:
            self.finish(A.OUTCOME_CANCELLED, error=ErrorInfo("QueueTimeout", "not started within the timeout"))
            return
        self.context.run(self._run_sync_inner, watch)

    def _run_sync_inner(self, watch: Callable[[Task], None]) -> None:
        token = None
        try:
            self.started_ns = time.perf_counter_ns()
            IN_CANDIDATE.set(True)
            token = self.job.start(self)
            watch(self)
            value = self.job.call(self)
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
            token = self.job.start(self)
            value = await asyncio.wait_for(self.job.acall(self), self.timeout)
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
            self.result = self.job.record(self, outcome, value, exc, outcome_error(outcome, error, self.timeout))
        except Exception as failure:
            internal_failure("record_candidate", failure)
            self.result = self.job.fallback(self, outcome)
        if self._event is not None:
            self._event.set()
        if self.on_finish is not None:
            self.on_finish(self)
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


def outcome_error(outcome: str, error: ErrorInfo | None, timeout: float) -> ErrorInfo | None:
    """The error a timeout or a cancellation stands for, when none was given."""
    if outcome == A.OUTCOME_TIMEOUT:
        return error or ErrorInfo("TimeoutError", f"candidate exceeded its timeout of {timeout:g}s")
    if outcome == A.OUTCOME_CANCELLED:
        return error or ErrorInfo("CancelledError", "candidate cancelled before it finished")
    return error


def closing_attributes(
    span: Span, outcome: str, exc: BaseException | None, error: ErrorInfo | None
) -> tuple[dict[str, Any], ErrorInfo | None]:
    """What every finished candidate span gets: the outcome attributes (to be set in one call with
    the rest), the exception event and the error status; returns them with the error they stand for.
    """
    attrs: dict[str, Any] = {A.SHADOW_OUTCOME: outcome}
    if exc is not None:
        error = ErrorInfo.of(exc)
        record_exception(span, exc)
        attrs[A.ERROR_TYPE] = type(exc).__qualname__
    if outcome == A.OUTCOME_TIMEOUT:
        attrs[A.ERROR_TYPE] = "timeout"
    if outcome != A.OUTCOME_OK:
        span.set_status(Status(StatusCode.ERROR, error.message if error else outcome))
    return attrs, error


def output_attributes(
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
