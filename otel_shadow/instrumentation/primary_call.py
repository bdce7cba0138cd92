"""The primary call: one user call a rule matched, observed as it runs and finished once.

1. **One GenAI span per model call.** If another GenAI instrumentation opened the span for this
   call, that span is the primary: we add the ``shadow.*`` attributes to it and make no second
   span. It does not matter whether it wraps outside us or inside: a wrapt wrapper inside ours is
   run with our code as the function it wraps (``_wrapt.call_beneath``), so its span is open when
   we look. If the SDK traces its own calls (anthropic's ``open_telemetry``, on by default), its
   span opens deep inside the SDK, where we cannot reach it: ours is then a thin ``shadow`` span
   around it and the SQL views take the model and token counts from that child. Alone, ours is
   the GenAI client span.
2. **The call** runs exactly once with the caller's arguments; its value (or exception) is
   returned unchanged. A stream is returned through a proxy (``streams``) that forwards every
   chunk as it arrives.
3. **When the primary finished** (returned, raised, or its stream ended), its work is scheduled
   through the shared ``core.shadow_call.ShadowPlan``, within the rule's concurrency cap and
   hourly budget (``rules.RuleState``); each candidate is a ``candidate_call.LLMCandidate``.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import attributes as A
from ..core.candidate import NO_OUTPUT, CandidateTask
from ..core.config import config_id_of, flatten
from ..core.failures import internal_failure
from ..core.shadow_call import primary_end_attributes
from ..core.stacktrace import record_exception
from ..redaction import default_redactor
from ._genai import Accumulator, Adapter, Info, unwrap_raw
from ._wrapt import call_beneath
from .candidate_call import REPLICATE, LLMCandidate
from .capture import CONTENT_EVENT, content_mode
from .rules import Rule
from .streams import AsyncStreamManagerProxy, AsyncStreamProxy, StreamManagerProxy, SyncStreamProxy

if TYPE_CHECKING:
    from .engine import ShadowEngine

__all__ = ["HANDLING", "PrimaryCall"]

logger = logging.getLogger("otel_shadow")

HANDLING: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_shadow_handling_llm_call", default=False)
"""True while our wrapper handles a call: a helper that calls another wrapped method is handled once."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _is_their_span(span: Span, model: str | None) -> bool:
    """The current span is another instrumentation's GenAI span for this very call."""
    if not span.is_recording():
        return False
    attributes = getattr(span, "attributes", None) or {}
    return (
        attributes.get(A.GEN_AI_OPERATION_NAME) is not None
        and attributes.get(A.GEN_AI_REQUEST_MODEL) == model
        and A.SHADOW_ROLE not in attributes
    )


class PrimaryCall:
    """One user call matched by a rule: its span, its completion, its candidates."""

    def __init__(
        self,
        engine: ShadowEngine,
        rule: Rule,
        adapter: Adapter,
        method: str,
        instance: Any,
        kwargs: dict[str, Any],
        model: str | None,
        traced_by_sdk: bool,
    ) -> None:
        self.engine = engine
        self.rule = rule
        self.adapter = adapter
        self.method = method
        self.instance = instance
        self.kwargs = kwargs
        self.model = model
        self.traced_by_sdk = traced_by_sdk
        self.config = adapter.config_of(kwargs)
        self.config_id = config_id_of(self.config)
        self.span: Span | None = None
        self.owned = False
        self.genai = False
        self.started = 0.0

    # --- the span ---------------------------------------------------------------------------------
    def _shadow_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            A.SHADOW_EXPERIMENT: self.rule.name,
            A.SHADOW_ROLE: A.ROLE_PRIMARY,
            A.SHADOW_CONFIG_ID: self.config_id,
            A.SHADOW_RULE: self.rule.name,
        }
        for key, value in flatten(self.config).items():
            attrs[A.SHADOW_CONFIG_PREFIX + key] = value
        return attrs

    def _open(self) -> object | None:
        self.started = time.perf_counter()
        current = trace.get_current_span()
        attrs = self._shadow_attributes()
        if _is_their_span(current, self.model):
            self.span, self.owned = current, False
            current.set_attributes(attrs)
            return None
        tracer = self.engine.telemetry
        name = f"{self.adapter.genai_operation} {self.model or ''}".strip()
        if self.traced_by_sdk:  # the SDK's own GenAI span will be created inside ours
            self.span = tracer.start_primary(f"shadow {name}", attrs)
        else:
            attrs.update(self.adapter.request_attributes(self.kwargs, self.instance))
            self.span = tracer.start_primary(name, attrs, SpanKind.CLIENT)
            self.genai = True
        self.owned = True
        self._capture_input(self.span)
        return otel_context.attach(trace.set_span_in_context(self.span))

    def _capture_input(self, span: Span) -> None:
        on_span, as_event = content_mode()
        if not (on_span or as_event):
            return
        try:
            attrs = {
                A.GEN_AI_INPUT_MESSAGES: self.redact(json.dumps(self.adapter.input_messages(self.kwargs), default=str))
            }
            system = self.adapter.system_prompt(self.kwargs)
            if system:
                attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = self.redact(system)
            if on_span:
                span.set_attributes(attrs)
            if as_event:
                span.add_event(CONTENT_EVENT, attrs)
        except Exception as exc:
            internal_failure("capture_input", exc, span)

    def redact(self, text: str) -> str:
        # no redact= hook: the rules file of OTEL_SHADOW_REDACT_RULES, the one the collector applies too
        redact = self.engine.redact if self.engine.redact is not None else default_redactor()
        return redact(text) if redact is not None else text

    # --- running -------------------------------------------------------------------------------------
    def run_sync(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return call_beneath(wrapped, args, kwargs, self._run_sync)

    async def run_async(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await call_beneath(wrapped, args, kwargs, self._run_async)

    def _run_sync(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = self._open()
        handling = HANDLING.set(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._close_context(handling, token)
            self.finish(None, exc, None)
            raise
        self._close_context(handling, token)
        return self._after(result, None)

    async def _run_async(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = self._open()
        handling = HANDLING.set(True)
        loop = asyncio.get_running_loop()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._close_context(handling, token)
            self.finish(None, exc, loop)
            raise
        self._close_context(handling, token)
        return self._after(result, loop)

    @staticmethod
    def _close_context(handling: Any, token: object | None) -> None:
        HANDLING.reset(handling)
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def _after(self, result: Any, loop: asyncio.AbstractEventLoop | None) -> Any:
        """A returned value: finish now, or once its stream ends."""
        try:
            if self.method == "stream":
                acc = Accumulator(self.adapter)
                if hasattr(result, "__aenter__"):  # the async manager: finished inside its event loop
                    return AsyncStreamManagerProxy(
                        result,
                        acc,
                        lambda info, error: self.finish(info, error, _running_loop()),
                        self.adapter.response_info,
                    )
                return StreamManagerProxy(result, acc, self._finisher(loop), self.adapter.response_info)
            if self.adapter.is_stream(self.method, self.kwargs):
                parsed, observable = unwrap_raw(result)
                if not observable or parsed is not result:  # a raw (with_raw_response) stream: not observed
                    self.finish(None, None, loop)
                    return result
                acc = Accumulator(self.adapter)
                acc.started = self.started
                if hasattr(result, "__anext__"):
                    return AsyncStreamProxy(result, acc, self._finisher(loop))
                return SyncStreamProxy(result, acc, self._finisher(loop))
            parsed, observable = unwrap_raw(result)
            info = self.adapter.response_info(parsed) if observable and parsed is not None else None
            self.finish(info, None, loop)
        except Exception as exc:
            internal_failure("observe_response", exc, self.span)
        return result

    def _finisher(self, loop: asyncio.AbstractEventLoop | None) -> Callable[[Info | None, BaseException | None], None]:
        """``finish`` for a stream proxy: called once, when the stream ends (for any reason)."""

        def finish(info: Info | None, error: BaseException | None) -> None:
            self.finish(info, error, loop)

        return finish

    # --- finishing -----------------------------------------------------------------------------------
    def finish(self, info: Info | None, error: BaseException | None, loop: asyncio.AbstractEventLoop | None) -> None:
        """Record the primary's outcome, schedule the candidates, end the span (never raises)."""
        span = self.span
        if span is None:
            return
        try:
            if error is not None:
                outcome = A.OUTCOME_ERROR
                if self.owned:
                    record_exception(span, error)
                    span.set_status(Status(StatusCode.ERROR, str(error)))
            elif info is not None and not info.complete:
                outcome = A.OUTCOME_CANCELLED  # the user closed the stream early
            else:
                outcome = A.OUTCOME_OK
            output = info.text if info is not None and info.complete else NO_OUTPUT
            attrs = primary_end_attributes(outcome, output, error)
            if info is not None:
                if self.genai:
                    attrs.update(info.attributes())
                elif info.ttft_ms is not None:
                    attrs[A.SHADOW_TIME_TO_FIRST_CHUNK] = info.ttft_ms
                self._capture_output(span, info)
            self._schedule(span, attrs, output if error is None else NO_OUTPUT, loop)
            span.set_attributes(attrs)
        except Exception as exc:
            internal_failure("finish_primary", exc, span)
        finally:
            if self.owned:
                span.end()
            self.kwargs = {}

    def _capture_output(self, span: Span, info: Info) -> None:
        on_span, as_event = content_mode()
        if not (on_span or as_event) or not self.owned:
            return
        messages = [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": info.text}],
                "finish_reason": (info.finish_reasons or ["stop"])[0],
            }
        ]
        attrs = {A.GEN_AI_OUTPUT_MESSAGES: self.redact(json.dumps(messages))}
        if on_span:
            span.set_attributes(attrs)
        if as_event:
            span.add_event(CONTENT_EVENT, attrs)

    def _schedule(
        self, span: Span, attrs: dict[str, Any], primary_text: Any, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """Schedule the rule's work through the shared plan; its coverage attributes go into ``attrs``.

        Each candidate first takes a slot of the rule's concurrency cap and hourly budget; the
        request is copied once, here, for all of them (the caller may reuse its own objects).
        """
        rule = self.rule
        plan = self.engine.plan(rule)
        ctx = span.get_span_context()
        reason = plan.sample(ctx)
        if reason is not None:
            attrs.update(plan.unsampled[reason])
            return
        roles = plan.roles()
        state = self.engine.state(rule)
        snapshot = copy.deepcopy({k: v for k, v in self.kwargs.items() if k not in ("extra_headers",)})
        snapshot["extra_headers"] = self.kwargs.get("extra_headers")
        primary_hash = attrs.get(A.SHADOW_OUTPUT_HASH)
        tasks: list[CandidateTask] = []
        refused: list[str | None] = []
        for index, role in enumerate(roles):
            candidate = rule.candidates[index] if role == A.ROLE_CANDIDATE else REPLICATE
            why = state.acquire()
            if why is None:
                try:
                    job = LLMCandidate(self, candidate, snapshot, primary_hash, loop is not None, role, primary_text)
                except Exception as exc:
                    logger.warning("otel-shadow: rule %r candidate %d cannot be built: %s", rule.name, index, exc)
                    state.release(None, None, None)
                    why = "invalid_candidate"
                else:
                    tasks.append(CandidateTask(job, ctx, rule.timeout, False))
            refused.append(why)
        reasons, _ = plan.schedule(self.engine.scheduler, roles, tasks, attrs, None, loop, refused)
        for before, why in zip(refused, reasons):
            if before is None and why is not None:  # refused by the scheduler: its slot back
                state.release(None, None, None)
