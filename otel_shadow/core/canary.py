"""The canary decision: is this caller in the canary cohort? Pure: no I/O, no clock, no randomness.

A canary serves the candidate's answer to a sticky fraction of users (docs/rollout.md). Rules:

* **Sticky by key.** A caller's bucket is ``xxh3_64(name NUL key)``'s top 53 bits ``/ 2**53``, uniform in [0, 1);
  the caller is in the canary when ``bucket < fraction``. The same key always lands in the same
  bucket, in every process, so a user sees one config, not a mix from call to call.
* **Monotone.** Raising the fraction only adds callers (a bucket below 0.05 is below 0.25):
  everyone already served the candidate stays; lowering it (a rollback) only removes.
* **Independent per experiment.** The experiment's (rule's) name is hashed with the key, so the
  5% of one experiment are not the 5% of every other.
* **No key, no canary.** A call whose key is missing, empty, or not a string or integer is served
  by the primary: a canary without a stable user would re-draw on every call.

The key is ``user`` (the request's ``user`` field, Anthropic's ``metadata.user_id``),
``request:<dotted.field>`` (any request field, e.g. ``request:metadata.tenant``), or
``baggage:<name>`` (an OpenTelemetry baggage entry of the current context, set upstream).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import xxhash
from opentelemetry import baggage

from ..errors import ConfigError

__all__ = ["MAX_KEY_CHARS", "CanarySpec", "bucket", "in_canary", "key_value"]

MAX_KEY_CHARS = 1024  # a user id is short; a longer value is not an id (hashed, but refused as a key)
_SCALE = float(1 << 53)  # the hash's top 53 bits: exact in a float, so the bucket is never 1.0


def _as_key(value: Any) -> str | None:
    """A usable key: a non-empty string or an integer (never a bool, a container, or the SDK's NOT_GIVEN)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_KEY_CHARS:
        return value
    return None


def _field(request: Mapping[str, Any], path: str) -> Any:
    node: Any = request
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def key_value(spec: str, request: Mapping[str, Any]) -> str | None:
    """The caller's key under ``spec`` (``user``, ``request:<field>``, ``baggage:<name>``), or None."""
    if spec == "user":
        user = _as_key(request.get("user"))  # OpenAI chat completions and responses
        return user if user is not None else _as_key(_field(request, "metadata.user_id"))  # Anthropic
    kind, _, name = spec.partition(":")
    if kind == "request":
        return _as_key(_field(request, name))
    if kind == "baggage":
        return _as_key(baggage.get_baggage(name))
    return None  # rules.Canary validates the spec: an unknown kind never gets here


def bucket(name: str, key: str) -> float:
    """The caller's sticky place in [0, 1) for experiment ``name``."""
    return (xxhash.xxh3_64_intdigest(f"{name}\x00{key}".encode()) >> 11) / _SCALE


def in_canary(name: str, fraction: float, spec: str, request: Mapping[str, Any]) -> bool:
    """True when the caller of this request is in experiment ``name``'s canary at ``fraction``."""
    if fraction <= 0:
        return False
    key = key_value(spec, request)
    if key is None:
        return False
    return fraction >= 1 or bucket(name, key) < fraction


_KEY_SPEC = re.compile(r"^(user|baggage:[A-Za-z0-9_.-]{1,128}|request:[A-Za-z0-9_.-]{1,128})$")


@dataclass(frozen=True, slots=True)
class CanarySpec:
    """A decorated experiment's canary (``Shadow(canary=...)``): the same fields as a rule's block."""

    fraction: float
    key: str

    @classmethod
    def of(cls, value: Mapping[str, Any] | CanarySpec | None, where: str) -> CanarySpec | None:
        """Validate ``{"fraction": 0.05, "key": "baggage:user.id"}``; errors name ``where`` and the fix."""
        if value is None or isinstance(value, CanarySpec):
            return value
        if not isinstance(value, Mapping) or set(value) != {"fraction", "key"}:
            raise ConfigError(
                f'{where}: a canary is {{"fraction": 0.05, "key": "user" | "baggage:<name>" | "request:<field>"}}; '
                f"got {value!r}"
            )
        fraction, key = value["fraction"], value["key"]
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"{where}: canary fraction {fraction!r} is outside 0.0–1.0")
        if not isinstance(key, str) or not _KEY_SPEC.match(key):
            raise ConfigError(
                f'{where}: canary key {key!r} must be "user", "baggage:<name>" or "request:<field>" (letters, digits, _ . -)'
            )
        return cls(float(fraction), key)
