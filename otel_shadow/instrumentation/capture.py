"""Where GenAI message content goes, if anywhere: the GenAI conventions' capture switch, read per call.

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is the same variable OpenTelemetry's own
GenAI instrumentations read, so one setting governs the primary's and the candidates' spans.
"""

from __future__ import annotations

import os

from ..environment_variables import OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT

__all__ = ["CONTENT_EVENT", "content_mode"]

CONTENT_EVENT = "gen_ai.client.inference.operation.details"


def content_mode() -> tuple[bool, bool]:
    """(on spans, as events) from ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``."""
    value = (os.environ.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT) or "NO_CONTENT").strip().upper()
    if value in ("TRUE", "1", "SPAN_ONLY"):
        return True, False
    if value == "EVENT_ONLY":
        return False, True
    if value == "SPAN_AND_EVENT":
        return True, True
    return False, False
