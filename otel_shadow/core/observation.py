"""What happened when one config ran (``VariantResult``), and what a runner call returns (``ShadowResult``).

Results are values: frozen once made. A ``ShadowResult`` from a runner that does not wait for
candidates still gives access to them later through ``wait()`` / ``wait_async()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .stacktrace import exception_type_name

__all__ = ["ErrorInfo", "Pending", "ShadowResult", "VariantResult"]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception reduced to what can be compared and stored: its type name and message."""

    type: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        return cls(type=exception_type_name(exc), message=str(exc))


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One execution of one config: the primary's, a candidate's or a replicate's.

    ``status`` is ``ok``, ``error``, ``timeout``, ``cancelled`` or ``dropped`` (never started:
    sampling, a full queue, a budget, the kill switch).
    """

    result: Any
    config_id: str
    role: str
    status: str
    execution_time_ms: float
    error: ErrorInfo | None = None
    drop_reason: str | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Pending(Protocol):
    """A scheduled candidate as a result holds it: its result once it has one, and a way to wait."""

    @property
    def result(self) -> VariantResult | None: ...

    def wait(self, timeout: float | None = None) -> bool: ...

    async def wait_async(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """What a runner call returns: the primary's result, and the candidates' when awaited.

    ``variant_results`` holds every candidate that has a final status when the result is made:
    all of them with ``await_variants=True``; otherwise the dropped ones, and ``wait()`` gives
    the rest when they finish.
    """

    main_result: VariantResult
    variant_results: tuple[VariantResult, ...]
    _tasks: Sequence[Pending] = field(default=(), repr=False, compare=False)
    _dropped: tuple[VariantResult, ...] = field(default=(), repr=False, compare=False)

    @property
    def pending(self) -> int:
        """How many candidates have not finished yet."""
        return sum(1 for t in self._tasks if t.result is None)

    def wait(self, timeout: float | None = None) -> tuple[VariantResult, ...]:
        """Block until every candidate finished (or ``timeout`` passed); return those finished."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        for task in self._tasks:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            task.wait(remaining)
        return self._finished()

    async def wait_async(self, timeout: float | None = None) -> tuple[VariantResult, ...]:
        """Await every candidate (async experiments: tasks on this loop) and return the results."""
        waits = [t.wait_async() for t in self._tasks]
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=timeout)
        return self._finished()

    def _finished(self) -> tuple[VariantResult, ...]:
        done = tuple(r for r in (t.result for t in self._tasks) if r is not None)
        return done + self._dropped
