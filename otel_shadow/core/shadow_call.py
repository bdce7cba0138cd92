"""One shadow call, decided without I/O: shared by decorated experiments and zero-code rules.

A shadow call is a primary call plus the background work it may start. Whatever drives it (the
sync or async wrapper of an experiment, the wrapper of an LLM client method) asks the same
``ShadowPlan``, built once per experiment or per version of a rule:

1. ``sample(span_context)``: sampled, or the reason not (``sampling``, ``trace_not_sampled``,
   ``nested``, ``disabled``). The rate on the trace id goes first: one comparison answers most
   calls (the unsampled ones); the other checks run only for calls the rate keeps, so a reason
   names the test that actually dropped the call.
2. ``roles()``: which work runs: every candidate, and a ``replicate`` (the primary's config
   again, the noise floor) at ``replicate_rate``.
3. ``schedule(...)``: admission through the scheduler's one front door, then the coverage
   attributes of the primary span (candidates scheduled and dropped, by reason; replicates
   apart: a replicate is not a candidate) and the drop counters.
4. ``unsampled[reason]``: the same attributes for a call that was not sampled (precomputed; its
   drops were counted with the decision: the common call costs a comparison, a counter append
   and a dict lookup).

``primary_end_attributes`` gives the primary span's outcome and output fingerprint. The drivers
only do what needs I/O or an event loop: the call, the spans, the content capture.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import Span, SpanContext, TraceFlags

from .. import attributes as A
from .candidate import IN_CANDIDATE, NO_OUTPUT, CandidateTask, PrimaryEnd
from .content import fingerprint
from .limits import Limits
from .sampling import Sampler, kill_switch_on
from .scheduler import Scheduler
from .telemetry import Telemetry

__all__ = ["ShadowPlan", "primary_end_attributes"]

logger = logging.getLogger("otel_shadow")

_LOW_64 = (1 << 64) - 1
_UNSAMPLED_REASONS = (A.DROP_NESTED, A.DROP_DISABLED, A.DROP_TRACE_NOT_SAMPLED, A.DROP_SAMPLING, A.DROP_EXPIRED)


class ShadowPlan:
    """What one experiment, or one version of a rule, decides on each call; built once."""

    __slots__ = (
        "name",
        "telemetry",
        "sampler",
        "threshold",
        "candidates",
        "replicate_rate",
        "has_work",
        "limits",
        "unsampled",
        "_admitted",
        "_candidates_only",
        "_with_replicate",
    )

    def __init__(
        self,
        name: str,
        telemetry: Telemetry,
        sampler: Sampler,
        candidates: int,
        replicate_rate: float,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.telemetry = telemetry
        self.sampler = sampler
        self.threshold = sampler.threshold  # a trace id's low 64 bits below it: sampled
        self.candidates = candidates
        self.replicate_rate = replicate_rate
        self.has_work = candidates > 0 or replicate_rate > 0.0
        self.limits = limits  # a time-bound experiment: past its limits, its calls are ``expired``
        self._candidates_only = (A.ROLE_CANDIDATE,) * candidates  # shared by every call
        self._with_replicate = (*self._candidates_only, A.ROLE_REPLICATE)
        # the coverage attributes of a call not sampled, by reason (shared: never mutate)
        self.unsampled: Mapping[str, Mapping[str, Any]] = {
            reason: {
                A.SHADOW_SAMPLED: False,
                A.SHADOW_CANDIDATES_SCHEDULED: 0,
                A.SHADOW_CANDIDATES_DROPPED: candidates,
                A.SHADOW_DROP_REASONS: reason,
            }
            for reason in _UNSAMPLED_REASONS
        }
        # the coverage attributes of a sampled call whose candidates were all admitted, no replicate
        self._admitted: Mapping[str, Any] = {
            A.SHADOW_SAMPLED: True,
            A.SHADOW_CANDIDATES_SCHEDULED: candidates,
            A.SHADOW_CANDIDATES_DROPPED: 0,
        }

    # --- 1. sampled or not, and why ----------------------------------------------------------------
    def sample(self, ctx: SpanContext) -> str | None:
        """Why the call whose primary span has ``ctx`` gets no work, or None (sampled).

        A call not sampled has its candidates counted as dropped here, with the decision."""
        trace_id, _, _, flags, _, valid = ctx  # its declared 6-tuple: no Python call per field
        if trace_id:  # a real trace: the rate on its id (random ids: uniform)
            if (trace_id & _LOW_64) >= self.threshold:
                self.telemetry.count_drops(self.name, A.DROP_SAMPLING, self.candidates)
                return A.DROP_SAMPLING
        elif not self.sampler.by_trace_id(0):  # no tracing configured: the sampler draws
            return self._not_sampled(A.DROP_SAMPLING)
        # the guards, in line (this runs on every sampled call)
        if valid and not flags & TraceFlags.SAMPLED:
            reason = A.DROP_TRACE_NOT_SAMPLED  # no evidence would be stored: don't pay
        elif IN_CANDIDATE.get():
            reason = A.DROP_NESTED
        elif kill_switch_on():
            reason = A.DROP_DISABLED
        elif self.limits is not None and not self.limits.admit():
            reason = A.DROP_EXPIRED  # a time-bound experiment past its limits (a kept call is counted)
        else:
            return None
        return self._not_sampled(reason)

    def sample_key(self, key_of: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The decision by a user's key function (maybe costly user code: the cheap guards go first)."""
        reason = self.guards()
        if reason is not None:
            return self._not_sampled(reason)
        try:
            keep = self.sampler.by_key(key_of(*args, **kwargs))
        except Exception:  # the user's own code failed, not ours: the call gets no work
            logger.debug("otel-shadow: sample_key raised; candidates skipped", exc_info=True)
            keep = False
        reason = self._expired() if keep else A.DROP_SAMPLING
        return None if reason is None else self._not_sampled(reason)

    @staticmethod
    def guards() -> str | None:
        """Why a call the rate would keep gets no work anyway, or None (``sample`` has them in line)."""
        if IN_CANDIDATE.get():
            return A.DROP_NESTED
        if kill_switch_on():
            return A.DROP_DISABLED
        return None

    def _expired(self) -> str | None:
        """``expired`` when a time-bound experiment is past its limits (the call is counted if not)."""
        if self.limits is not None and not self.limits.admit():
            return A.DROP_EXPIRED
        return None

    def _not_sampled(self, reason: str) -> str:
        self.telemetry.count_drops(self.name, reason, self.candidates)
        return reason

    # --- 2. which work runs ------------------------------------------------------------------------------
    def roles(self) -> Sequence[str]:
        """The roles of a sampled call's work: each candidate in order, then maybe a replicate."""
        if self.replicate_rate and random.random() < self.replicate_rate:
            return self._with_replicate
        return self._candidates_only

    # --- 3. admission and drop accounting --------------------------------------------------------------
    def schedule(
        self,
        scheduler: Scheduler,
        roles: Sequence[str],
        tasks: Sequence[CandidateTask],
        end_attrs: dict[str, Any],
        span: Span | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        refused: Sequence[str | None] | None = None,
    ) -> tuple[list[str | None], bool]:
        """Submit a sampled call's work; return each role's drop reason (None: scheduled), and
        whether the primary span is ended here or off the caller's path (else the caller ends it).

        ``tasks`` are the work of ``roles`` in order; with ``refused``, only of the roles whose
        entry is None there, the others refused before the scheduler (a rule's budget, a candidate
        that cannot be built). The coverage attributes go into ``end_attrs``. With ``span``, when
        a worker is idle (or the tasks run on ``loop``), the span is ended in the background
        (``PrimaryEnd``, with the end time taken here): by that worker or by the first of its
        tasks to run.
        """
        ending = PrimaryEnd(span) if span is not None and (loop is not None or scheduler.idle_workers) else None
        reasons = scheduler.submit(tasks, loop, ending)
        if refused is not None:
            told = iter(reasons)
            reasons = [why if why is not None else next(told) for why in refused]
        if roles is self._candidates_only and not any(reasons):  # the common call: all admitted
            end_attrs.update(self._admitted)
        else:
            self._coverage(roles, reasons, end_attrs)
        if ending is None:
            return reasons, False
        ending.arm(end_attrs, time.time_ns())
        return reasons, True

    def _coverage(self, roles: Sequence[str], reasons: Sequence[str | None], end_attrs: dict[str, Any]) -> None:
        """The coverage attributes (candidates and replicates apart) and the drop counts."""
        scheduled = replicates = 0
        dropped: list[str] = []
        for role, why in zip(roles, reasons):
            if why is None:
                if role == A.ROLE_CANDIDATE:
                    scheduled += 1
                else:
                    replicates += 1
            elif role == A.ROLE_CANDIDATE:
                dropped.append(why)
        end_attrs[A.SHADOW_SAMPLED] = True
        end_attrs[A.SHADOW_CANDIDATES_SCHEDULED] = scheduled
        end_attrs[A.SHADOW_CANDIDATES_DROPPED] = len(dropped)
        if replicates:
            end_attrs[A.SHADOW_REPLICATES_SCHEDULED] = replicates
        if dropped:
            distinct = set(dropped)
            end_attrs[A.SHADOW_DROP_REASONS] = ",".join(sorted(distinct))
            for why in distinct:
                self.telemetry.count_drops(self.name, why, dropped.count(why))


def primary_end_attributes(
    outcome: str,
    output: Any = NO_OUTPUT,
    exc: BaseException | None = None,
    constants: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The primary span's end attributes: ``constants`` (what every call of the experiment or rule
    carries), its outcome, the error type, the output's fingerprint."""
    attrs: dict[str, Any] = {} if constants is None else dict(constants)
    attrs[A.SHADOW_OUTCOME] = outcome
    if exc is not None:
        attrs[A.ERROR_TYPE] = type(exc).__qualname__
    if output is not NO_OUTPUT:
        attrs[A.SHADOW_OUTPUT_HASH], attrs[A.SHADOW_OUTPUT_LENGTH] = fingerprint(output)
    return attrs
