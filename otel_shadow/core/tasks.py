"""What the scheduler runs, as protocols: the bottom of ``core/``, so nothing here imports upwards.

The scheduler knows tasks only through ``Task``; a task knows its scheduler only through the
``on_finish`` function the scheduler gave it when it admitted the task. ``Job`` is what a
candidate or replicate does (a decorated function's call, an LLM request): the one task class,
``core.candidate.CandidateTask``, runs a job and records its outcome exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .observation import ErrorInfo, VariantResult

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext

__all__ = ["Ending", "Job", "Task", "TaskView"]


class Task(Protocol):
    """A unit of background work with exactly one recorded outcome."""

    timeout: float
    result: VariantResult | None
    stuck: bool  # its worker hung past the deadline and was replaced
    atask: asyncio.Task[None] | None  # set when it runs on an event loop
    started_ns: int
    on_finish: Callable[[Task], None] | None  # the scheduler's callback, given at admission
    primary_end: Callable[[], None] | None  # run before the task starts or finishes

    @property
    def deadline_ns(self) -> int: ...

    def run_sync(self, watch: Callable[[Task], None]) -> None: ...

    async def run_async(self) -> None: ...

    def finish(
        self,
        outcome: str,
        *,
        value: Any = None,
        exc: BaseException | None = None,
        error: ErrorInfo | None = None,
    ) -> bool: ...


class Ending(Protocol):
    """A job that comes with a batch of tasks (ending their primary span): it must run before any
    of them starts, may run more than once (it acts once), and learns whether it was ``handed`` to
    the workers or tasks (else its owner runs it)."""

    handed: bool

    def __call__(self) -> None: ...


class TaskView(Protocol):
    """What a job may use of the task running it: its times, its per-call payload, its span."""

    started_ns: int
    enqueued_ns: int
    payload: Any  # what the job needs of this one call (a job may be shared by many tasks)
    span: Span | None  # the candidate's span, set by the job when it opens it

    def primary_context(self) -> SpanContext: ...


class Job(Protocol):
    """What one candidate or replicate does; the task that runs it records it once.

    ``start`` opens the span and attaches its context (it returns the detach token); ``call`` or
    ``acall`` does the work; ``record`` ends the span and builds the result (it runs on every
    outcome, also when ``start`` never ran); ``fallback`` is the result when ``record`` failed.
    """

    def start(self, task: TaskView) -> object: ...

    def call(self, task: TaskView) -> Any: ...

    async def acall(self, task: TaskView) -> Any: ...

    def record(
        self, task: TaskView, outcome: str, value: Any, exc: BaseException | None, error: ErrorInfo | None
    ) -> VariantResult: ...

    def fallback(self, task: TaskView, outcome: str) -> VariantResult: ...
