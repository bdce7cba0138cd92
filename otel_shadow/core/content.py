"""Output fingerprints (always recorded) and content capture (only on opt-in, redactable).

Prompts and outputs are personal data. What is always recorded is a fingerprint: a short hash and
a length, enough for SQL to tell whether the candidate agreed with the primary without storing
what either said. The text itself reaches a span only when content capture is enabled, and then
through the redaction hook first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import xxhash

from ..redaction import default_redactor

__all__ = ["Redactor", "canonical_text", "fingerprint", "render_content"]

Redactor = Callable[[str], str]
_xxh3_64_hexdigest = xxhash.xxh3_64_hexdigest
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
    """``(hash, length)`` of an output: 16 hex characters of XXH3-64 and the text length.

    XXH3 rather than a cryptographic hash: the fingerprint is computed on the caller's path for
    every primary, and it only has to tell equal outputs from different ones (a 64-bit hash; a
    false match between two different outputs has odds of 1 in 2**64). BLAKE2b-64 cost about
    4k CPU instructions more per call. Neither hides a short output from someone who can guess it:
    that is what leaving content capture off is for.
    """
    text = value if type(value) is str else canonical_text(value)  # the common case, one call less
    return _xxh3_64_hexdigest(text.encode("utf-8", "replace")), len(text)


def render_content(value: Any, redact: Redactor | None) -> str:
    """The text put on a span when capture is on: redacted, then truncated.

    Without a ``redact`` hook, the rules file named by ``OTEL_SHADOW_REDACT_RULES`` applies
    (``otel_shadow.redaction``: the same rules the collector applies at ingest)."""
    text = canonical_text(value)
    if redact is None:
        redact = default_redactor()
    if redact is not None:
        text = redact(text)
    if len(text) > MAX_CONTENT_CHARS:
        text = text[:MAX_CONTENT_CHARS] + "…[truncated]"
    return text
