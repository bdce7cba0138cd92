"""Time-bound experiments: past an end time, a maximum duration or a number of shadowed calls, no candidates.

Shadow traffic costs money, and a forgotten experiment runs and pays forever. An experiment or a
rule may carry ``ends_at`` (an aware datetime, or an ISO 8601 string with its offset),
``max_duration`` (seconds from when the experiment was made, or the rule first loaded) and
``max_calls`` (calls that get candidates). Past any of them the experiment has ended: its calls
still run their primary and get a span, with the drop reason ``expired``. An experiment that ends
stays ended (a limit is not a rate), and says so once in the log.
"""

from __future__ import annotations

import itertools
import logging
import time
from datetime import datetime
from typing import Any

from ..errors import ConfigError

__all__ = ["Limits"]

logger = logging.getLogger("otel_shadow")


class Limits:
    """When one experiment (or rule) stops scheduling candidates; shared by all its calls."""

    __slots__ = ("name", "ends_at", "max_duration", "max_calls", "_deadline", "_calls", "ended", "why")

    def __init__(
        self,
        name: str,
        ends_at: datetime | str | None = None,
        max_duration: float | None = None,
        max_calls: int | None = None,
    ) -> None:
        self.name = name
        self.ends_at = _wall_time(ends_at, name)
        if max_duration is not None and not (isinstance(max_duration, int | float) and max_duration > 0):
            raise ConfigError(f"{name}: max_duration must be positive seconds; got {max_duration!r}")
        if max_calls is not None and not (isinstance(max_calls, int) and max_calls > 0):
            raise ConfigError(f"{name}: max_calls must be a positive whole number; got {max_calls!r}")
        self.max_duration = max_duration
        self.max_calls = max_calls
        self._deadline = time.monotonic() + max_duration if max_duration is not None else None
        self._calls = itertools.count(1)  # next() is atomic under the GIL: no lock on the caller's path
        self.ended = False
        self.why = ""  # which limit ended it

    @classmethod
    def of(
        cls, name: str, ends_at: datetime | str | None, max_duration: float | None, max_calls: int | None
    ) -> Limits | None:
        """Limits, or None when none is set (the call then pays nothing for them)."""
        if ends_at is None and max_duration is None and max_calls is None:
            return None
        return cls(name, ends_at, max_duration, max_calls)

    def admit(self) -> bool:
        """True if a call the sampler kept may still get candidates (it is then counted)."""
        if self.ended:
            return False
        if self.ends_at is not None and time.time() >= self.ends_at:
            return self._end("its end time")
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return self._end(f"its max_duration of {self.max_duration:g}s")
        if self.max_calls is not None and next(self._calls) > self.max_calls:
            return self._end(f"its max_calls of {self.max_calls}")
        return True

    def _end(self, why: str) -> bool:
        if not self.ended:
            self.ended, self.why = True, why
            logger.warning("otel-shadow: experiment %r reached %s; it schedules no more candidates", self.name, why)
        return False


def _wall_time(value: Any, name: str) -> float | None:
    """``ends_at`` as seconds since the epoch; a datetime must say its time zone."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                f"{name}: ends_at {value!r} is not an ISO 8601 time; write it like '2026-12-01T18:00:00+00:00'"
            ) from None
    if not isinstance(value, datetime):
        raise ConfigError(f"{name}: ends_at must be a datetime or an ISO 8601 string; got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(
            f"{name}: ends_at {value.isoformat()!r} has no time zone; add one (e.g. '+00:00'), "
            "so every process ends the experiment at the same instant"
        )
    return value.timestamp()
