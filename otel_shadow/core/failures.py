"""The one handler for otel-shadow's own failures on the app's path: record, count, log, never raise.

Shadowing must never change the call it wraps. Whatever goes wrong in our bookkeeping (a span
that cannot be ended, a candidate that cannot be built, a fingerprint that raises) comes here:

* on the span, when one is given and still recording, as an event ``shadow.internal_error``;
* counted in the OpenTelemetry counter ``shadow.internal.errors`` (attribute ``shadow.where``) on
  the meter providers given to ``Shadow`` or the instrumentors (the global one when none was),
  so the user's backend can alert on it;
* logged at WARNING with its traceback, once per place per minute (a failure that repeats on
  every call must not flood the application's log), at DEBUG otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

from .. import attributes as A

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = [
    "INTERNAL_ERRORS_METRIC",
    "INTERNAL_ERROR_EVENT",
    "WHERE_ATTRIBUTE",
    "failures",
    "internal_failure",
    "register",
]

INTERNAL_ERRORS_METRIC = A.METRIC_INTERNAL_ERRORS
INTERNAL_ERROR_EVENT = A.EVENT_INTERNAL_ERROR
WHERE_ATTRIBUTE = A.METRIC_ATTR_WHERE
LOG_INTERVAL_S = 60.0  # one WARNING per place per this many seconds

logger = logging.getLogger("otel_shadow")

_lock = threading.Lock()
_last_logged: dict[str, float] = {}
_tally: Counter[str] = Counter()  # failures by place, read by the observable counters
_registered: set[int] = set()  # the meter providers that have the counter (0: the global one)


def register(meter_provider: metrics.MeterProvider | None = None) -> None:
    """Give ``meter_provider`` (default: the global one) the ``shadow.internal.errors`` counter, once."""
    key = 0 if meter_provider is None else id(meter_provider)
    with _lock:
        if key in _registered:
            return
        _registered.add(key)
    from .._version import __version__

    meter = (meter_provider or metrics.get_meter_provider()).get_meter("otel_shadow", __version__)
    meter.create_observable_counter(
        INTERNAL_ERRORS_METRIC,
        callbacks=[_observe],
        unit="{error}",
        description="otel-shadow's own failures, by place (the wrapped call was not affected)",
    )


def _observe(options: Any) -> Iterable[metrics.Observation]:
    with _lock:
        items = list(_tally.items())
    for where, value in items:
        yield metrics.Observation(value, {WHERE_ATTRIBUTE: where})


def failures() -> dict[str, int]:
    """Internal failures so far in this process, by place."""
    with _lock:
        return dict(_tally)


def internal_failure(where: str, exc: BaseException, span: Span | None = None) -> None:
    """Report one of otel-shadow's own failures at ``where`` (a short stable name). Never raises."""
    now = time.monotonic()
    with _lock:
        _tally[where] += 1
        last = _last_logged.get(where)
        loud = last is None or now - last >= LOG_INTERVAL_S
        if loud:
            _last_logged[where] = now
    try:
        if not _registered:
            register()
        if span is not None and span.is_recording():
            span.add_event(INTERNAL_ERROR_EVENT, {WHERE_ATTRIBUTE: where, "exception.type": type(exc).__qualname__})
        if loud:
            logger.warning("otel-shadow: internal failure in %s (the call was not affected)", where, exc_info=exc)
        else:
            logger.debug("otel-shadow: internal failure in %s", where, exc_info=exc)
    except Exception:  # pragma: no cover - the handler itself must never break the call
        pass
