"""A decorated experiment's canary: a sticky share of callers answered by the FIRST candidate config.

Opt-in only: ``Shadow(..., canary={"fraction": 0.05, "key": "baggage:user.id"})`` or
``shadow.experiment(canary=...)``. An experiment without one keeps its own wrapper: nothing here
runs on its calls. For a caller ``core.canary.in_canary`` puts in the cohort, the function is
called with the first candidate's config instead of the primary's; its value or exception is the
caller's (no fallback: a silent fallback would hide the errors the canary verdict counts). The span
is the experiment's span with role ``canary``, the candidate's config id and
``shadow.primary.config.id``; no candidate runs for it (not a pair).

The key is read from the call's keyword arguments (``user``, ``request:<dotted.field>``) or from
OpenTelemetry baggage (``baggage:<name>``); a key passed positionally is not seen, so such a call
is answered by the primary. ``Shadow.run``'s runner always runs the primary and its candidates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from .. import attributes as A
from .canary import CanarySpec, in_canary
from .candidate import NO_OUTPUT
from .failures import internal_failure
from .shadow_call import primary_end_attributes

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["canary_wrapper"]


def canary_wrapper(exp: Experiment, canary: CanarySpec, primary: Callable[..., Any]) -> Callable[..., Any]:
    """``primary`` (the experiment's own wrapper) behind the canary decision."""
    spec = exp.candidates[0]
    attrs = {**exp.span_attributes(spec, A.ROLE_CANDIDATE), A.SHADOW_ROLE: A.ROLE_CANARY}

    def chosen(kwargs: dict[str, Any]) -> bool:
        try:
            return in_canary(exp.name, canary.fraction, canary.key, kwargs)
        except Exception as exc:  # a key that cannot be read: the primary answers
            internal_failure("canary_key", exc)
            return False

    def finish(span: trace.Span, value: Any, exc: BaseException | None) -> None:
        try:
            # as the primary's: its exception recorded, or its output's fingerprint
            end = exp._primary_failed(span, exc) if exc is not None else primary_end_attributes(A.OUTCOME_OK, value)
            span.set_attributes(end)
        except Exception as failure:
            internal_failure("canary_finish", failure, span)
        span.end()
        exp.telemetry.count_run(exp.name, A.ROLE_CANARY, A.OUTCOME_OK if exc is None else A.OUTCOME_ERROR)

    if exp.is_async:

        @functools.wraps(exp.fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if not chosen(kwargs):
                return await primary(*args, **kwargs)
            span = exp.telemetry.start_span(exp.name, attributes=attrs)
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                value = await exp.fn(*args, **exp.plan.apply(spec, args, kwargs))
            except BaseException as exc:
                otel_context.detach(token)
                finish(span, NO_OUTPUT, exc)
                raise
            otel_context.detach(token)
            finish(span, value, None)
            return value

        return async_wrapper

    @functools.wraps(exp.fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        if not chosen(kwargs):
            return primary(*args, **kwargs)
        span = exp.telemetry.start_span(exp.name, attributes=attrs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            value = exp.fn(*args, **exp.plan.apply(spec, args, kwargs))
        except BaseException as exc:
            otel_context.detach(token)
            finish(span, NO_OUTPUT, exc)
            raise
        otel_context.detach(token)
        finish(span, value, None)
        return value

    return sync_wrapper
