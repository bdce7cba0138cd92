"""The shadow engine: the state one instrumentor's wrappers share (rules, telemetry, scheduler, plans).

The layout follows OpenTelemetry's GenAI instrumentations, one job per module:

* ``instrumentors`` — the ``BaseInstrumentor`` classes and the table of wrap points;
* ``wrappers`` — what runs in place of each wrapped method: shadow this call or pass it through;
* ``primary_call`` — the user's call: its span, its outcome, its work scheduled once it finished;
* ``candidate_call`` — one candidate's LLM call on the scheduler (a ``core.tasks.Job``);
* ``clients`` — the cache of the SDK clients candidates call through;
* ``engine`` (here) — what they share: the rules (hot-reloaded), each rule's state and shadow plan.

The decisions of a shadow call (sampling, work, admission, coverage) are the core's
``core.shadow_call.ShadowPlan``, the same as for decorated experiments.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ..core.comparison import Comparison
from ..core.limits import Limits
from ..core.sampling import Sampler
from ..core.scheduler import Scheduler, default_scheduler
from ..core.shadow_call import ShadowPlan
from ..core.telemetry import Telemetry
from ..environment_variables import OTEL_SHADOW_CONFIG
from .clients import ClientCache
from .rules import Rule, Rules, RulesSource, RuleState, shared_source, validate_rules

__all__ = ["ShadowEngine", "aflush", "engine_from", "flush"]


class ShadowEngine:
    """Rules, telemetry and scheduling shared by the wrappers of one instrumentor."""

    def __init__(
        self,
        rules: Rules | RulesSource | str | os.PathLike[str] | None = None,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        scheduler: Scheduler | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if rules is None:
            path = os.environ.get(OTEL_SHADOW_CONFIG)
            rules = shared_source(path) if path else Rules()
        elif isinstance(rules, str | os.PathLike):
            rules = shared_source(rules)
        self._rules = rules
        self.telemetry = Telemetry(tracer_provider, meter_provider)
        self._scheduler = scheduler
        self.redact = redact
        self._states: dict[str, RuleState] = {}  # by rule name: a budget survives a reload of the file
        self._comparisons: dict[str, tuple[Rule, Comparison]] = {}  # by rule name, rebuilt when the rule changes
        self._plans: dict[str, tuple[Rule, ShadowPlan]] = {}  # by rule name, rebuilt when the rule changes
        self._time_limits: dict[tuple[Any, ...], Limits | None] = {}
        self._lock = threading.Lock()
        self.clients = ClientCache()

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler if self._scheduler is not None else default_scheduler()

    @property
    def rules(self) -> Rules:
        return self._rules.rules if isinstance(self._rules, RulesSource) else self._rules

    def state(self, rule: Rule) -> RuleState:
        state = self._states.get(rule.name)
        if state is None:
            with self._lock:
                state = self._states.setdefault(rule.name, RuleState(rule))
        state.rule = rule  # the latest version of the rule (limits may have been edited)
        return state

    def comparison(self, rule: Rule) -> Comparison:
        """The rule's comparison metrics (built once per version of the rule)."""
        cached = self._comparisons.get(rule.name)
        if cached is None or cached[0] is not rule:
            cached = self._comparisons[rule.name] = (rule, rule.comparison())
        return cached[1]

    def plan(self, rule: Rule) -> ShadowPlan:
        """The rule's shadow plan (built once per version of the rule)."""
        cached = self._plans.get(rule.name)
        if cached is None or cached[0] is not rule:
            sampler = Sampler(rule.sample_rate, rule.name)
            limits = self._limits(rule)
            plan = ShadowPlan(rule.name, self.telemetry, sampler, len(rule.candidates), rule.replicate_rate, limits)
            cached = self._plans[rule.name] = (rule, plan)
        return cached[1]

    def _limits(self, rule: Rule) -> Limits | None:
        """The rule's time limits: kept across reloads of the file while they stay the same (the
        duration and the call count run from when the rule first loaded with them)."""
        key = (rule.name, rule.ends_at, rule.max_duration, rule.max_calls)
        with self._lock:
            if key not in self._time_limits:
                self._time_limits[key] = Limits.of(
                    f"rule {rule.name!r}", rule.ends_at, rule.max_duration, rule.max_calls
                )
            return self._time_limits[key]


def engine_from(kwargs: dict[str, Any]) -> ShadowEngine:
    """Build an engine from ``instrument(**kwargs)`` (what ``opentelemetry-instrument`` passes)."""
    rules = kwargs.get("rules")
    if rules is not None and not isinstance(rules, Rules | RulesSource | str | os.PathLike):
        rules = validate_rules(rules, "instrument(rules=...)")
    return ShadowEngine(
        rules,
        tracer_provider=kwargs.get("tracer_provider"),
        meter_provider=kwargs.get("meter_provider"),
        scheduler=kwargs.get("scheduler"),
        redact=kwargs.get("redact"),
    )


def flush(timeout: float | None = None) -> bool:
    """Wait until the zero-code candidates of sync calls have an outcome (True if all did in time)."""
    return default_scheduler().flush(timeout)


async def aflush(timeout: float | None = None) -> bool:
    """Await the zero-code candidates running on this event loop, then the sync ones.

    ``asyncio.run()`` cancels every task still running when the main coroutine returns, so a
    short async script ends with ``await aflush()`` to let its last candidates finish.
    """
    return await default_scheduler().aflush(timeout)
