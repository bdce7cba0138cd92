"""The only code that starts experiment spans and counts candidates.

It uses the OpenTelemetry *API* only: the global tracer and meter providers, or ones passed in.
otel-shadow never installs a provider of its own. Counters are observable instruments read from
in-memory tallies, so the user's call pays a dict update, not a metric-SDK call.

The candidate's OpenTelemetry context is built on purpose, not copied: it starts from an empty
context plus the caller's baggage, then sets the candidate span. A blindly copied context carries
keys other instrumentations use to fold nested calls into the outer one (the GenAI utilities'
inference key, ``suppress_instrumentation``), which would make the candidate's own LLM spans vanish.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import baggage, metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind

from .. import attributes as A
from .failures import register as register_failures

__all__ = ["Telemetry", "candidate_context"]

_INSTRUMENTATION_NAME = "otel_shadow"


def candidate_context(span: Span, parent: Context | None) -> Context:
    """An OpenTelemetry context holding ``span`` and the baggage of ``parent``, nothing else."""
    ctx = Context()
    if parent is not None:
        for key, value in baggage.get_all(parent).items():
            ctx = baggage.set_baggage(key, value, ctx)
    return trace.set_span_in_context(span, ctx)


class Telemetry:
    """Tracer, meter and the candidate tallies for one ``Shadow``."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        from .._version import __version__

        self.tracer = (
            tracer_provider.get_tracer(_INSTRUMENTATION_NAME, __version__)
            if tracer_provider is not None
            else trace.get_tracer(_INSTRUMENTATION_NAME, __version__)
        )
        # the tracer's start_span, bound once: an experiment's primary span (kind INTERNAL) is
        # started with it directly, one Python call less on the caller's path than start_primary
        self.start_span = self.tracer.start_span
        self._meter_provider = meter_provider
        self._lock = threading.Lock()
        self._drops: Counter[tuple[str, str]] = Counter()
        self._drop_log: deque[tuple[str, str, int]] = deque()  # not yet folded into _drops
        self._runs: Counter[tuple[str, str, str]] = Counter()
        self._metric_errors: Counter[tuple[str, str]] = Counter()
        self._instruments_made = False

    # --- spans ----------------------------------------------------------------------------
    def start_primary(self, name: str, attrs: Mapping[str, Any], kind: SpanKind = SpanKind.INTERNAL) -> Span:
        return self.tracer.start_span(name, kind=kind, attributes=attrs)

    def start_candidate(
        self,
        name: str,
        primary: SpanContext,
        attrs: Mapping[str, Any],
        start_time: int | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        """A candidate span: a child of the primary (same trace) that also links to it."""
        parent = trace.set_span_in_context(NonRecordingSpan(primary), Context())
        links = [Link(primary, {A.SHADOW_LINK: A.LINK_PRIMARY})] if primary.is_valid else None
        return self.tracer.start_span(
            name,
            context=parent,
            kind=kind,
            attributes=attrs,
            links=links,
            start_time=start_time,
        )

    # --- counters -------------------------------------------------------------------------
    def count_drops(self, experiment: str, reason: str, n: int) -> None:
        """Count ``n`` candidates not run. Lock-free on the caller's path: one ``deque.append``
        (atomic), folded into the tallies when they are read or every 4096 entries."""
        if not self._instruments_made:
            self._ensure_instruments()
        log = self._drop_log
        log.append((experiment, reason, n))
        if len(log) >= 4096:
            self._fold_drops()

    def _fold_drops(self) -> None:
        log, drops = self._drop_log, self._drops
        with self._lock:
            while True:
                try:
                    experiment, reason, n = log.popleft()
                except IndexError:
                    return
                drops[(experiment, reason)] += n

    def count_run(self, experiment: str, role: str, outcome: str) -> None:
        if not self._instruments_made:
            self._ensure_instruments()
        with self._lock:
            self._runs[(experiment, role, outcome)] += 1

    def count_metric_error(self, experiment: str, metric: str) -> None:
        """A comparison metric raised (on a worker; the metric is left out of the span)."""
        if not self._instruments_made:
            self._ensure_instruments()
        with self._lock:
            self._metric_errors[(experiment, metric)] += 1

    def tallies(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str, str], int]]:
        """Copies of the drop and run tallies (for tests and the self-report)."""
        self._fold_drops()
        with self._lock:
            return dict(self._drops), dict(self._runs)

    def _ensure_instruments(self) -> None:
        if self._instruments_made:
            return
        with self._lock:
            if self._instruments_made:
                return
            self._instruments_made = True
        from .._version import __version__

        meter = (
            self._meter_provider.get_meter(_INSTRUMENTATION_NAME, __version__)
            if self._meter_provider is not None
            else metrics.get_meter(_INSTRUMENTATION_NAME, __version__)
        )
        register_failures(self._meter_provider)
        meter.create_observable_counter(
            A.METRIC_CANDIDATE_RUNS,
            callbacks=[self._observe_runs],
            unit="{candidate}",
            description="Candidate and replicate executions by outcome",
        )
        meter.create_observable_counter(
            A.METRIC_CANDIDATE_DROPS,
            callbacks=[self._observe_drops],
            unit="{candidate}",
            description="Candidates not run, by reason (sampling, queue full, budget, kill switch...)",
        )
        meter.create_observable_counter(
            A.METRIC_COMPARISON_ERRORS,
            callbacks=[self._observe_metric_errors],
            unit="{error}",
            description="Comparison metrics that raised (left out of the candidate's span)",
        )

    def _observe_runs(self, options: Any) -> Iterable[metrics.Observation]:
        with self._lock:
            items = list(self._runs.items())
        for (experiment, role, outcome), value in items:
            yield metrics.Observation(
                value, {A.SHADOW_EXPERIMENT: experiment, A.SHADOW_ROLE: role, A.SHADOW_OUTCOME: outcome}
            )

    def _observe_drops(self, options: Any) -> Iterable[metrics.Observation]:
        self._fold_drops()
        with self._lock:
            items = list(self._drops.items())
        for (experiment, reason), value in items:
            yield metrics.Observation(value, {A.SHADOW_EXPERIMENT: experiment, A.METRIC_ATTR_DROP_REASON: reason})

    def _observe_metric_errors(self, options: Any) -> Iterable[metrics.Observation]:
        with self._lock:
            items = list(self._metric_errors.items())
        for (experiment, metric), value in items:
            yield metrics.Observation(value, {A.SHADOW_EXPERIMENT: experiment, A.METRIC_ATTR_METRIC: metric})
