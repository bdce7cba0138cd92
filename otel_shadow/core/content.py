"""Output fingerprints (always recorded) and content capture (only on opt-in, redactable).

Prompts and outputs are personal data. What is always recorded is a fingerprint: a short hash and
a length, enough for SQL to tell whether the candidate agreed with the primary without storing
what either said. The text itself reaches a span only when content capture is enabled, and then
through the redaction hook first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

__all__ = ["Redactor", "canonical_text", "fingerprint", "render_content"]

Redactor = Callable[[str], str]
_blake2b = hashlib.blake2b
MAX_CONTENT_CHARS = 16_384


def canonical_text(value: Any) -> str:
    """The text form of an output used for hashing: equal outputs give equal text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    dump_json = getattr(value, "model_dump_json", None)
    if callable(dump_json):  # pydantic model
        try:
            return str(dump_json())
        except Exception:
            pass
    if isinstance(value, dict | list | tuple | int | float | bool) or value is None:
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            pass
    return repr(value)


def fingerprint(value: Any) -> tuple[str, int]:
    """``(hash, length)`` of an output: 16 hex characters of BLAKE2b and the text length."""
    text = value if type(value) is str else canonical_text(value)  # the common case, one call less
    return _blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest(), len(text)


def render_content(value: Any, redact: Redactor | None) -> str:
    """The text put on a span when capture is on: redacted, then truncated."""
    text = canonical_text(value)
    if redact is not None:
        text = redact(text)
    if len(text) > MAX_CONTENT_CHARS:
        text = text[:MAX_CONTENT_CHARS] + "…[truncated]"
    return text
