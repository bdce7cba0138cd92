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
    from opentelemetry.trace import SpanContext

__all__ = ["Job", "OnAdmitted", "Task", "TaskView"]


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


OnAdmitted = Callable[[list[str | None]], Callable[[], None] | None]
"""Told, before any admitted task starts, each task's drop reason (None: admitted); returns a job
that must run before the admitted tasks start (ending the primary span), or None."""


class TaskView(Protocol):
    """What a job may read of the task running it."""

    started_ns: int
    enqueued_ns: int

    def primary_context(self) -> SpanContext: ...


class Job(Protocol):
    """What one candidate or replicate does; the task that runs it records it once.

    ``start`` opens the span and attaches its context (it returns the detach token); ``call`` or
    ``acall`` does the work; ``record`` ends the span and builds the result (it runs on every
    outcome, also when ``start`` never ran); ``fallback`` is the result when ``record`` failed.
    """

    role: str

    def start(self, task: TaskView) -> object: ...

    def call(self) -> Any: ...

    async def acall(self) -> Any: ...

    def record(
        self, task: TaskView, outcome: str, value: Any, exc: BaseException | None, error: ErrorInfo | None
    ) -> VariantResult: ...

    def fallback(self, outcome: str) -> VariantResult: ...
