"""The wrappers: what runs in place of each wrapped SDK method, deciding per call whether to shadow it.

A call is passed through untouched when it is positional (not the SDK's documented form), inside
a candidate or a call we already handle, suppressed by OpenTelemetry, switched off by the kill
switch, or matched by no rule; otherwise it becomes a ``primary_call.PrimaryCall``, or, for a caller
in the rule's opt-in canary cohort, a ``canary_call.CanaryCall``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from ..core.candidate import IN_CANDIDATE
from ..core.failures import internal_failure
from ..core.sampling import kill_switch_on
from ._genai import ADAPTERS
from .canary_call import canary_call
from .engine import ShadowEngine
from .primary_call import HANDLING, PrimaryCall

__all__ = ["make_wrapper"]


def _suppressed() -> bool:
    return not is_instrumentation_enabled()


def _traces_natively(instance: Any) -> bool:
    """The SDK itself opens a GenAI span for this resource's calls (anthropic's ``open_telemetry``, on by default)."""
    client = getattr(instance, "_client", None)
    options = getattr(client, "open_telemetry", None)  # the client's resolved option (anthropic >= 2)
    if not isinstance(options, dict):
        return False
    traces = options.get("traces")
    if not (isinstance(traces, dict) and traces.get("enabled")):
        return False
    provider = options.get("tracer_provider") or trace.get_tracer_provider()
    # no SDK provider (the global one not set yet) or a no-op one: the SDK's spans do not record
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def make_wrapper(
    engine: ShadowEngine, provider: str, operation: str, method: str, is_async: bool
) -> Callable[..., Any]:
    """The wrapt wrapper of one SDK method (``provider``'s ``operation`` through ``method``)."""
    adapter = ADAPTERS[(provider, operation)]

    def begin(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PrimaryCall | None:
        if args or IN_CANDIDATE.get() or HANDLING.get() or _suppressed() or kill_switch_on():
            return None
        try:
            model = adapter.model(kwargs)
            rule = engine.rules.find(provider, operation, model, kwargs)
            if rule is None:
                return None
            if rule.canary is not None:  # opt-in: a rule without the block pays this one check
                canary = canary_call(engine, rule, adapter, method, instance, kwargs, model, _traces_natively(instance))
                if canary is not None:
                    return canary
            return PrimaryCall(engine, rule, adapter, method, instance, kwargs, model, _traces_natively(instance))
        except Exception as exc:
            internal_failure("plan_call", exc)
            return None

    if is_async and method != "stream":  # AsyncMessages.stream returns a manager, not a coroutine

        async def async_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            call = begin(wrapped, instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            return await call.run_async(wrapped, args, kwargs)

        return async_wrapper

    def sync_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = begin(wrapped, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        return call.run_sync(wrapped, args, kwargs)

    return sync_wrapper
