"""Which calls get candidates: a rate, deterministic for a key, and the kill switch.

The default key is the trace id, so every service that sees a trace makes the same decision, and a
primary and its candidates are kept or dropped together. A key function (the user id, say) makes
the choice sticky per user instead. ``OTEL_SHADOW_DISABLED=true`` turns every candidate off with no
code change; it is re-read at most once a second so a restart is not needed either.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from ..environment_variables import OTEL_SHADOW_DISABLED, env_bool

__all__ = ["Sampler", "kill_switch_on"]

_SCALE = 1 << 64
_MASK = _SCALE - 1

_switch_value = False
_switch_read_at = float("-inf")


def kill_switch_on() -> bool:
    """True when ``OTEL_SHADOW_DISABLED`` is set to true (cached for one second)."""
    global _switch_value, _switch_read_at
    now = time.monotonic()
    if now - _switch_read_at > 1.0:
        _switch_value = env_bool(OTEL_SHADOW_DISABLED)
        _switch_read_at = now
    return _switch_value


def _reset_kill_switch_cache() -> None:
    global _switch_read_at
    _switch_read_at = float("-inf")


class Sampler:
    """Decide, per call, whether this experiment's candidates run."""

    __slots__ = ("rate", "threshold", "_salt")

    def __init__(self, rate: float, salt: str) -> None:
        if not 0.0 <= rate <= 1.0:
            from ..errors import ConfigError

            raise ConfigError(f"sample_rate {rate!r} is outside 0.0–1.0; use 0.1 to shadow 10% of calls")
        self.rate = rate
        self.threshold = int(rate * _SCALE)
        self._salt = salt.encode()

    def by_trace_id(self, trace_id: int) -> bool:
        """Keep when the low 64 bits of the trace id fall under the rate (random ids: uniform)."""
        if self.threshold >= _SCALE:
            return True
        if self.threshold == 0:
            return False
        if trace_id == 0:  # no tracing configured: no id to be consistent with
            return random.random() < self.rate
        return (trace_id & _MASK) < self.threshold

    def by_key(self, key: Any) -> bool:
        """Keep when the salted hash of ``key`` falls under the rate: the same key, the same answer."""
        if self.threshold >= _SCALE:
            return True
        if self.threshold == 0:
            return False
        digest = hashlib.blake2b(str(key).encode(), digest_size=8, key=self._salt[:64]).digest()
        return int.from_bytes(digest, "big") < self.threshold
