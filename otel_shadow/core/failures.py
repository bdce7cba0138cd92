"""The one handler for otel-shadow's own failures on the app's path: record, count, log, never raise.

Shadowing must never change the call it wraps. Whatever goes wrong in our bookkeeping (a span
that cannot be ended, a candidate that cannot be built, a fingerprint that raises) comes here:

* on the span, when one is given and still recording, as an event ``shadow.internal_error``;
* counted in the OpenTelemetry counter ``shadow.internal.errors`` (attribute ``shadow.where``),
  through the global meter provider, so the user's backend can alert on it;
* logged at WARNING with its traceback, once per place per minute (a failure that repeats on
  every call must not flood the application's log), at DEBUG otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["INTERNAL_ERRORS_METRIC", "INTERNAL_ERROR_EVENT", "WHERE_ATTRIBUTE", "internal_failure"]

INTERNAL_ERRORS_METRIC = "shadow.internal.errors"
INTERNAL_ERROR_EVENT = "shadow.internal_error"
WHERE_ATTRIBUTE = "shadow.where"
LOG_INTERVAL_S = 60.0  # one WARNING per place per this many seconds

logger = logging.getLogger("otel_shadow")

_lock = threading.Lock()
_last_logged: dict[str, float] = {}
_counter: list[Any] = []  # the instrument, made on the first failure (a failure-free app makes none)


def _count(where: str) -> None:
    if not _counter:
        meter = metrics.get_meter("otel_shadow")
        counter = meter.create_counter(
            INTERNAL_ERRORS_METRIC,
            unit="{error}",
            description="otel-shadow's own failures (the wrapped call was not affected)",
        )
        with _lock:
            if not _counter:
                _counter.append(counter)
    _counter[0].add(1, {WHERE_ATTRIBUTE: where})


def internal_failure(where: str, exc: BaseException, span: Span | None = None) -> None:
    """Report one of otel-shadow's own failures at ``where`` (a short stable name). Never raises."""
    try:
        if span is not None and span.is_recording():
            span.add_event(
                INTERNAL_ERROR_EVENT,
                {WHERE_ATTRIBUTE: where, "exception.type": type(exc).__qualname__, "exception.message": str(exc)},
            )
        _count(where)
        now = time.monotonic()
        with _lock:
            last = _last_logged.get(where)
            loud = last is None or now - last >= LOG_INTERVAL_S
            if loud:
                _last_logged[where] = now
        if loud:
            logger.warning("otel-shadow: internal failure in %s (the call was not affected)", where, exc_info=exc)
        else:
            logger.debug("otel-shadow: internal failure in %s", where, exc_info=exc)
    except Exception:  # pragma: no cover - the handler itself must never break the call
        pass
