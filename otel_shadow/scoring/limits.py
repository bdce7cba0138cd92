"""A request rate limit (token bucket) and budgets (tokens, dollars) shared by concurrent scorer calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Budget", "RateLimiter"]


class RateLimiter:
    """At most ``rate`` requests per second on average, bursts of ``burst``; ``acquire`` blocks."""

    def __init__(
        self,
        rate: float | None,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive requests per second; got {rate!r}")
        self.rate = rate
        self.capacity = float(max(1, burst))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self.rate is None:
            return
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0 - 1e-9:  # float rounding must not leave a waiter spinning
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return
                wait = (1.0 - self._tokens) / self.rate
            self._sleep(wait)


class Budget:
    """A budget in tokens or in dollars: a call reserves its estimate before it is sent and settles
    its real usage after, so concurrent calls never start once what is spent plus what is reserved
    reaches it."""

    def __init__(self, limit: float | None, unit: str = "token") -> None:
        if limit is not None and not limit > 0:
            raise ValueError(f"the {unit} budget must be positive; got {limit!r}")
        self.limit = limit
        self.unit = unit
        self.spent: float = 0
        self.reserved: float = 0
        self.exhausted = False
        self._lock = threading.Lock()

    def release(self, estimate: float) -> None:
        """Give back a reservation whose call will not be sent (another budget refused it)."""
        with self._lock:
            self.reserved -= estimate

    def reserve(self, estimate: float) -> bool:
        """True when a call estimated at ``estimate`` tokens may go; False (and exhausted) otherwise."""
        with self._lock:
            if self.limit is None:
                self.reserved += estimate
                return True
            if self.exhausted or self.spent + self.reserved + estimate > self.limit:
                self.exhausted = True
                return False
            self.reserved += estimate
            return True

    def settle(self, estimate: float, used: float) -> None:
        with self._lock:
            self.reserved -= estimate
            self.spent += used

    def add(self, used: float) -> None:
        """Usage that was not reserved (an embeddings endpoint reports it after the fact)."""
        with self._lock:
            self.spent += used
            if self.limit is not None and self.spent >= self.limit:
                self.exhausted = True
