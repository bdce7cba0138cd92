"""The instrumentors: thin ``BaseInstrumentor`` subclasses that only wrap and unwrap (and the wrap points).

Registered under the ``opentelemetry_instrumentor`` entry point as ``shadow_openai`` and
``shadow_anthropic`` (names of their own, so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` can turn
them off without touching OpenTelemetry's ``openai`` instrumentation). A provider whose library is
not installed is skipped quietly by ``BaseInstrumentor``'s dependency check.

Wrap points (checked against the installed SDKs: helpers that bypass ``create`` are wrapped too,
and a re-entrancy guard makes sure a helper that does call ``create`` is handled once):

* OpenAI: ``chat.completions.create`` (covers ``stream=True``, ``with_raw_response`` and the
  ``chat.completions.stream`` helper), ``chat.completions.parse``, ``responses.create`` (covers the
  ``responses.stream`` helper), ``responses.parse`` — sync and async.
* Anthropic: ``messages.create`` (covers ``stream=True``), ``messages.stream``, ``messages.parse``
  — sync and async.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from ..errors import ConfigError
from .engine import ShadowEngine, engine_from
from .wrappers import make_wrapper

logger = logging.getLogger("otel_shadow")

__all__ = ["AnthropicShadowInstrumentor", "OpenAIShadowInstrumentor"]

# (module, class, method, operation, is_async)
OPENAI_WRAP_POINTS = (
    ("openai.resources.chat.completions.completions", "Completions", "create", "chat", False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create", "chat", True),
    ("openai.resources.chat.completions.completions", "Completions", "parse", "chat", False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "parse", "chat", True),
    ("openai.resources.responses.responses", "Responses", "create", "responses", False),
    ("openai.resources.responses.responses", "AsyncResponses", "create", "responses", True),
    ("openai.resources.responses.responses", "Responses", "parse", "responses", False),
    ("openai.resources.responses.responses", "AsyncResponses", "parse", "responses", True),
)
ANTHROPIC_WRAP_POINTS = (
    ("anthropic.resources.messages.messages", "Messages", "create", "messages", False),
    ("anthropic.resources.messages.messages", "AsyncMessages", "create", "messages", True),
    ("anthropic.resources.messages.messages", "Messages", "stream", "messages", False),
    ("anthropic.resources.messages.messages", "AsyncMessages", "stream", "messages", True),
    ("anthropic.resources.messages.messages", "Messages", "parse", "messages", False),
    ("anthropic.resources.messages.messages", "AsyncMessages", "parse", "messages", True),
)


class _ShadowInstrumentor(BaseInstrumentor):
    provider = ""
    wrap_points: tuple[tuple[str, str, str, str, bool], ...] = ()
    dependencies: tuple[str, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.dependencies

    def _instrument(self, **kwargs: Any) -> None:
        """kwargs: tracer_provider, meter_provider, rules (path, mapping or Rules), scheduler, redact.

        Never raises: ``opentelemetry-instrument`` stops loading every later instrumentor when one
        raises. A bad rules file is logged once, in one line, and leaves shadowing off.
        """
        self.wrapped: list[tuple[Any, str]] = []
        try:
            self.engine: ShadowEngine = engine_from(kwargs)
        except ConfigError as exc:
            _report_once(f"otel-shadow: shadowing is off: {exc} (fix the rules file, then restart the application)")
            return
        except Exception as exc:
            _report_once(
                f"otel-shadow: shadowing is off: the shadow engine could not start: {type(exc).__name__}: {exc}"
            )
            return
        for module, cls, method, operation, is_async in self.wrap_points:
            try:
                target = getattr(importlib.import_module(module), cls, None)
                if target is None or not hasattr(target, method):  # an SDK version without it
                    continue
                wrapper = make_wrapper(self.engine, self.provider, operation, method, is_async)
                wrap_function_wrapper(module, f"{cls}.{method}", wrapper)
                self.wrapped.append((target, method))
            except Exception as exc:  # an SDK layout we do not know: that method is not shadowed
                _report_once(f"otel-shadow: {module}.{cls}.{method} is not shadowed: {type(exc).__name__}: {exc}")

    def _uninstrument(self, **kwargs: Any) -> None:
        for target, method in getattr(self, "wrapped", ()):
            unwrap(target, method)
        self.wrapped = []


_REPORTED: set[str] = set()


def _report_once(message: str) -> None:
    """One line per distinct problem, however many instrumentors meet it (no traceback: it is not a bug)."""
    if message not in _REPORTED:
        _REPORTED.add(message)
        logger.error("%s", message)


class OpenAIShadowInstrumentor(_ShadowInstrumentor):
    """Shadows matching OpenAI chat-completions and responses calls to the rules' candidates."""

    provider = "openai"
    wrap_points = OPENAI_WRAP_POINTS
    dependencies = ("openai >= 1.40",)


class AnthropicShadowInstrumentor(_ShadowInstrumentor):
    """Shadows matching Anthropic messages calls to the rules' candidates."""

    provider = "anthropic"
    wrap_points = ANTHROPIC_WRAP_POINTS
    dependencies = ("anthropic >= 0.40",)
