"""The shadow engine behind the instrumentors: one LLM call in, the primary observed, candidates out.

For a call that a rule matches:

1. **The primary's span: one GenAI span per model call.** If another GenAI instrumentation opened
   the span for this call, that span is the primary: we add the ``shadow.*`` attributes to it and
   make no second span. It does not matter whether it wraps outside us or inside: a wrapt wrapper
   inside ours is run with our code as the function it wraps, so its span is open when we look.
   If the SDK traces its own calls (anthropic's ``open_telemetry``, on by default), its span opens
   deep inside the SDK, where we cannot reach it: ours is then a thin ``shadow`` span around it
   and the SQL views take the model and token counts from that child. Alone, ours is the GenAI
   client span. A candidate's GenAI span is always ours: its client copy has the SDK's spans off.
2. **The call** runs exactly once with the caller's arguments; its value (or exception) is returned
   unchanged. A stream is returned through a proxy that forwards every chunk as it arrives.
3. **When the primary finished** (returned, raised, or its stream ended), candidates are scheduled
   on the core's bounded scheduler: sampled by trace id, within the rule's concurrency cap and hourly
   budget. Each candidate calls the API's *original* method (beneath every instrumentation) on a
   copy of the user's client (its auth and base URL, the rule's retries and timeout), with the
   rule's overrides applied to a copy of the request, in a context built from scratch: so it is never
   shadowed again and no other instrumentation folds it into the primary.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import attributes as A
from ..core.candidate import IN_CANDIDATE, NO_OUTPUT, CandidateTask, closing_attributes, output_attributes
from ..core.comparison import Comparison
from ..core.config import config_id_of, flatten
from ..core.failures import internal_failure
from ..core.observation import ErrorInfo, VariantResult
from ..core.sampling import Sampler, kill_switch_on
from ..core.scheduler import Scheduler, default_scheduler
from ..core.shadow_call import ShadowPlan, primary_end_attributes
from ..core.stacktrace import record_exception
from ..core.tasks import TaskView
from ..core.telemetry import Telemetry, candidate_context
from ..environment_variables import OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, OTEL_SHADOW_CONFIG
from ..redaction import default_redactor
from ._genai import ADAPTERS, DEFAULT_OPERATION, Accumulator, Adapter, Info, unwrap_raw
from .rules import CandidateRule, Rule, Rules, RulesSource, RuleState, shared_source, validate_rules
from .streams import AsyncStreamManagerProxy, AsyncStreamProxy, StreamManagerProxy, SyncStreamProxy

__all__ = ["ShadowEngine", "aflush", "content_mode", "flush"]

logger = logging.getLogger("otel_shadow")

_HANDLING: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_shadow_handling_llm_call", default=False)
"""True while our wrapper handles a call: a helper that calls another wrapped method is handled once."""

_RESOURCE = {
    "chat": lambda client: client.chat.completions,
    "responses": lambda client: client.responses,
    "messages": lambda client: client.messages,
}


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


# every wrapt wrapper derives from this (wrapt 2 split it from the public ObjectProxy)
_PROXY: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


def _original(resource: Any, method: str) -> Callable[..., Any]:
    """The SDK's own method, beneath every wrapt wrapper (ours and other instrumentations')."""
    fn = getattr(type(resource), method)
    while isinstance(fn, _PROXY):
        fn = fn.__wrapped__
    return fn


def _call_beneath(wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any], here: Callable[..., Any]) -> Any:
    """Call ``wrapped`` with ``here`` run innermost, beneath every wrapt wrapper inside ours.

    Another instrumentation that wraps inside ours opens its GenAI span when its wrapper runs; by
    handing its wrapper our code as the function it wraps, that span is current when ``here``
    starts, so it becomes the primary (annotated) instead of a child of a second span of ours.
    ``here(fn, args, kwargs)`` gets the SDK's bound method.
    """
    wrapper = getattr(wrapped, "_self_wrapper", None) if isinstance(wrapped, _PROXY) else None
    if wrapper is None:
        return here(wrapped, args, kwargs)
    inner = wrapped.__wrapped__
    enabled = getattr(wrapped, "_self_enabled", None)
    if enabled is not None and not (enabled() if callable(enabled) else enabled):  # wrapt's own switch
        return _call_beneath(inner, args, kwargs, here)
    return wrapper(lambda *a, **k: _call_beneath(inner, a, k, here), wrapped._self_instance, args, kwargs)


def _traces_natively(instance: Any) -> bool:
    """The SDK itself opens a GenAI span for this resource's calls (anthropic's ``open_telemetry``, on by default)."""
    client = getattr(instance, "_client", None)
    options = getattr(client, "open_telemetry", None)  # the client's resolved option (anthropic >= 2)
    if not isinstance(options, dict):
        return False
    traces = options.get("traces")
    if not (isinstance(traces, dict) and traces.get("enabled")):
        return False
    provider = options.get("tracer_provider") or trace.get_tracer_provider()
    # no SDK provider (the global one not set yet) or a no-op one: the SDK's spans do not record
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _suppressed() -> bool:
    return not is_instrumentation_enabled()


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


def _without_native_spans(client: Any) -> dict[str, Any]:
    """Options that turn off an SDK's own spans (a candidate's GenAI span is ours: one per model call)."""
    return {"open_telemetry": False} if hasattr(client, "open_telemetry") else {}


class ShadowEngine:
    """Rules, telemetry and scheduling shared by the wrappers of one instrumentor."""

    def __init__(
        self,
        rules: Rules | RulesSource | str | os.PathLike[str] | None = None,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        scheduler: Scheduler | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if rules is None:
            path = os.environ.get(OTEL_SHADOW_CONFIG)
            rules = shared_source(path) if path else Rules()
        elif isinstance(rules, str | os.PathLike):
            rules = shared_source(rules)
        self._rules = rules
        self.telemetry = Telemetry(tracer_provider, meter_provider)
        self._scheduler = scheduler
        self.redact = redact
        self._states: dict[str, RuleState] = {}  # by rule name: a budget survives a reload of the file
        self._comparisons: dict[str, tuple[Rule, Comparison]] = {}  # by rule name, rebuilt when the rule changes
        self._plans: dict[str, tuple[Rule, ShadowPlan]] = {}  # by rule name, rebuilt when the rule changes
        self._lock = threading.Lock()
        self._foreign_clients: dict[tuple[Any, ...], Any] = {}
        self._candidate_clients: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler if self._scheduler is not None else default_scheduler()

    @property
    def rules(self) -> Rules:
        return self._rules.rules if isinstance(self._rules, RulesSource) else self._rules

    def state(self, rule: Rule) -> RuleState:
        state = self._states.get(rule.name)
        if state is None:
            with self._lock:
                state = self._states.setdefault(rule.name, RuleState(rule))
        state.rule = rule  # the latest version of the rule (limits may have been edited)
        return state

    def comparison(self, rule: Rule) -> Comparison:
        """The rule's comparison metrics (built once per version of the rule)."""
        cached = self._comparisons.get(rule.name)
        if cached is None or cached[0] is not rule:
            cached = self._comparisons[rule.name] = (rule, rule.comparison())
        return cached[1]

    def plan(self, rule: Rule) -> ShadowPlan:
        """The rule's shadow plan (built once per version of the rule)."""
        cached = self._plans.get(rule.name)
        if cached is None or cached[0] is not rule:
            sampler = Sampler(rule.sample_rate, rule.name)
            plan = ShadowPlan(rule.name, self.telemetry, sampler, len(rule.candidates), rule.replicate_rate)
            cached = self._plans[rule.name] = (rule, plan)
        return cached[1]

    # --- wrappers -------------------------------------------------------------------------------
    def wrapper(self, provider: str, operation: str, method: str, is_async: bool) -> Callable[..., Any]:
        adapter = ADAPTERS[(provider, operation)]

        def begin(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PrimaryCall | None:
            if args or IN_CANDIDATE.get() or _HANDLING.get() or _suppressed() or kill_switch_on():
                return None
            try:
                model = adapter.model(kwargs)
                rule = self.rules.find(provider, operation, model, kwargs)
                if rule is None:
                    return None
                return PrimaryCall(self, rule, adapter, method, instance, kwargs, model, _traces_natively(instance))
            except Exception as exc:
                internal_failure("plan_call", exc)
                return None

        if is_async and method != "stream":  # AsyncMessages.stream returns a manager, not a coroutine

            async def async_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                call = begin(wrapped, instance, args, kwargs)
                if call is None:
                    return await wrapped(*args, **kwargs)
                return await call.run_async(wrapped, args, kwargs)

            return async_wrapper

        def sync_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            call = begin(wrapped, instance, args, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            return call.run_sync(wrapped, args, kwargs)

        return sync_wrapper

    def candidate_client(self, client: Any, options: dict[str, Any]) -> Any:
        """A copy of the user's client with the rule's options, made once per client and options."""
        key = tuple(sorted(options.items()))
        with self._lock:
            per_client = self._candidate_clients.get(client)
            if per_client is None:
                per_client = self._candidate_clients[client] = {}
            copy_ = per_client.get(key)
            if copy_ is None:
                copy_ = per_client[key] = client.with_options(**options, **_without_native_spans(client))
        return copy_

    def foreign_client(self, provider: str, candidate: CandidateRule, rule: Rule, is_async: bool) -> Any:
        loop = id(asyncio.get_running_loop()) if is_async else None
        key = (provider, candidate.base_url, candidate.api_key_env, is_async, loop, rule.max_retries, rule.timeout)
        client = self._foreign_clients.get(key)
        if client is None:
            env = candidate.api_key_env or ("OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY")
            options: dict[str, Any] = {"api_key": os.environ.get(env, "unset"), "max_retries": rule.max_retries, "timeout": rule.timeout}
            if candidate.base_url:
                options["base_url"] = candidate.base_url
            if provider == "openai":
                import openai

                client = (openai.AsyncOpenAI if is_async else openai.OpenAI)(**options)
            else:
                import anthropic

                client = (anthropic.AsyncAnthropic if is_async else anthropic.Anthropic)(**options, **_without_native_spans(anthropic.Anthropic))
            self._foreign_clients[key] = client
        return client


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
            attrs = {A.GEN_AI_INPUT_MESSAGES: self._redact(json.dumps(self.adapter.input_messages(self.kwargs), default=str))}
            system = self.adapter.system_prompt(self.kwargs)
            if system:
                attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = self._redact(system)
            if on_span:
                span.set_attributes(attrs)
            if as_event:
                span.add_event("gen_ai.client.inference.operation.details", attrs)
        except Exception as exc:
            internal_failure("capture_input", exc, span)

    def _redact(self, text: str) -> str:
        # no redact= hook: the rules file of OTEL_SHADOW_REDACT_RULES, the one the collector applies too
        redact = self.engine.redact if self.engine.redact is not None else default_redactor()
        return redact(text) if redact is not None else text

    # --- running -------------------------------------------------------------------------------------
    def run_sync(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _call_beneath(wrapped, args, kwargs, self._run_sync)

    async def run_async(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await _call_beneath(wrapped, args, kwargs, self._run_async)

    def _run_sync(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = self._open()
        handling = _HANDLING.set(True)
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
        handling = _HANDLING.set(True)
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
        _HANDLING.reset(handling)
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def _after(self, result: Any, loop: asyncio.AbstractEventLoop | None) -> Any:
        """A returned value: finish now, or once its stream ends."""
        try:
            if self.method == "stream":
                acc = Accumulator(self.adapter)
                if hasattr(result, "__aenter__"):  # the async manager: finished inside its event loop
                    return AsyncStreamManagerProxy(
                        result, acc, lambda info, error: self.finish(info, error, _running_loop()), self.adapter.response_info
                    )
                finish: Callable[[Info | None, BaseException | None], None] = lambda info, error: self.finish(info, error, loop)
                return StreamManagerProxy(result, acc, finish, self.adapter.response_info)
            if self.adapter.is_stream(self.method, self.kwargs):
                parsed, observable = unwrap_raw(result)
                if not observable or parsed is not result:  # a raw (with_raw_response) stream: not observed
                    self.finish(None, None, loop)
                    return result
                acc = Accumulator(self.adapter)
                acc.started = self.started
                finish = lambda info, error: self.finish(info, error, loop)
                if hasattr(result, "__anext__"):
                    return AsyncStreamProxy(result, acc, finish)
                return SyncStreamProxy(result, acc, finish)
            parsed, observable = unwrap_raw(result)
            info = self.adapter.response_info(parsed) if observable and parsed is not None else None
            self.finish(info, None, loop)
        except Exception as exc:
            internal_failure("observe_response", exc, self.span)
        return result

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
        messages = [{"role": "assistant", "parts": [{"type": "text", "content": info.text}], "finish_reason": (info.finish_reasons or ["stop"])[0]}]
        attrs = {A.GEN_AI_OUTPUT_MESSAGES: self._redact(json.dumps(messages))}
        if on_span:
            span.set_attributes(attrs)
        if as_event:
            span.add_event("gen_ai.client.inference.operation.details", attrs)

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
        work: list[CandidateTask | str] = []
        for index, role in enumerate(roles):
            candidate = rule.candidates[index] if role == A.ROLE_CANDIDATE else _REPLICATE
            why = state.acquire()
            if why is None:
                try:
                    job = LLMCandidate(self, candidate, snapshot, primary_hash, loop is not None, role, primary_text)
                except Exception as exc:
                    logger.warning("otel-shadow: rule %r candidate %d cannot be built: %s", rule.name, index, exc)
                    state.release(None, None, None)
                    why = "invalid_candidate"
                else:
                    work.append(CandidateTask(job, ctx, rule.timeout, False))
                    continue
            work.append(why)
        reasons = plan.schedule(self.engine.scheduler, roles, work, attrs, None, loop)
        for item, why in zip(work, reasons):
            if why is not None and not isinstance(item, str):  # refused by the scheduler: its slot back
                state.release(None, None, None)


_REPLICATE = CandidateRule()  # no overrides: the primary's own request


class LLMCandidate:
    """What one candidate LLM call does (a ``core.tasks.Job``), run on the scheduler."""

    __slots__ = (
        "primary", "candidate", "target", "request", "method", "span", "info", "config", "config_id",
        "_span_name", "is_async", "_primary_hash", "role", "_primary_text",
    )

    def __init__(
        self,
        primary: PrimaryCall,
        candidate: CandidateRule,
        request: dict[str, Any],
        primary_hash: str | None,
        is_async: bool,
        role: str = A.ROLE_CANDIDATE,
        primary_text: Any = NO_OUTPUT,
    ) -> None:
        self.primary = primary
        self.candidate = candidate
        source = primary.adapter
        target_provider = candidate.provider or source.provider
        self.target = source if target_provider == source.provider else ADAPTERS[(target_provider, DEFAULT_OPERATION[target_provider])]
        self.request = request  # the caller's snapshot; the candidate's request is built in the background
        self.method = primary.method if primary.method == "parse" and self.target is source else "create"
        self.config: dict[str, Any] = {}
        self.config_id = ""
        self.span: Span | None = None
        self.info: Info | None = None
        self.is_async = is_async
        self._span_name = ""
        self._primary_hash = primary_hash
        self.role = role
        self._primary_text = primary_text

    def _prepare(self) -> None:
        """Build the candidate's request and config (off the caller's thread, once)."""
        if self._span_name:
            return
        source = self.primary.adapter
        request = source.candidate_request(self.request, self.candidate, self.target)
        if self.primary.method == "stream":  # the stream helper: the candidate streams through create(stream=True)
            request["stream"] = True
        self.request = request
        if self.role == A.ROLE_REPLICATE:  # the primary's config, by definition
            self.config, self.config_id = dict(self.primary.config), self.primary.config_id
        else:
            self.config = self.target.config_of(request)
            if self.candidate.name:
                self.config["name"] = self.candidate.name
            self.config_id = config_id_of(self.config)
        self._span_name = f"{self.target.genai_operation} {self.target.model(request) or ''}".strip()

    def _attributes(self) -> dict[str, Any]:
        self._prepare()
        rule = self.primary.rule
        attrs: dict[str, Any] = {
            A.SHADOW_EXPERIMENT: rule.name,
            A.SHADOW_ROLE: self.role,
            A.SHADOW_CONFIG_ID: self.config_id,
            A.SHADOW_PRIMARY_CONFIG_ID: self.primary.config_id,
            A.SHADOW_RULE: rule.name,
        }
        for key, value in flatten(self.config).items():
            attrs[A.SHADOW_CONFIG_PREFIX + key] = value
        attrs.update(self.target.request_attributes(self.request, self._client_placeholder()))
        return attrs

    def _client_placeholder(self) -> Any:
        candidate = self.candidate
        if candidate.base_url or self.target is not self.primary.adapter:
            return None
        return self.primary.instance

    def _resource(self) -> Any:
        primary, candidate, rule = self.primary, self.candidate, self.primary.rule
        if self.target is not primary.adapter and self.target.provider != primary.adapter.provider:
            client = primary.engine.foreign_client(self.target.provider, candidate, rule, self.is_async)
        else:
            options: dict[str, Any] = {"max_retries": rule.max_retries, "timeout": rule.timeout}
            if candidate.base_url:
                options["base_url"] = candidate.base_url
            if candidate.api_key_env:
                options["api_key"] = os.environ.get(candidate.api_key_env, "unset")
            client = primary.engine.candidate_client(primary.instance._client, options)
        return _RESOURCE[self.target.operation](client)

    def start(self, task: TaskView) -> object:
        attrs = self._attributes()
        attrs[A.SHADOW_QUEUE_MS] = (task.started_ns - task.enqueued_ns) / 1e6
        self.span = self.primary.engine.telemetry.start_candidate(self._span_name, task.primary_context(), attrs, kind=SpanKind.CLIENT)
        on_span, as_event = content_mode()
        if on_span or as_event:
            content = {A.GEN_AI_INPUT_MESSAGES: self.primary._redact(json.dumps(self.target.input_messages(self.request), default=str))}
            if on_span:
                self.span.set_attributes(content)
            if as_event:
                self.span.add_event("gen_ai.client.inference.operation.details", content)
        return otel_context.attach(candidate_context(self.span, None))

    def call(self) -> Any:
        resource = self._resource()
        result = _original(resource, self.method)(resource, **self.request)
        if self.request.get("stream") is True:
            acc = Accumulator(self.target)
            try:
                for item in result:
                    acc.feed(item)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            self.info = acc.result()
        else:
            self.info = self.target.response_info(result)
        return self.info.text

    async def acall(self) -> Any:
        resource = self._resource()
        result = await _original(resource, self.method)(resource, **self.request)
        if self.request.get("stream") is True:
            acc = Accumulator(self.target)
            try:
                async for item in result:
                    acc.feed(item)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    await close()
            self.info = acc.result()
        else:
            self.info = self.target.response_info(result)
        return self.info.text

    def fallback(self, outcome: str) -> VariantResult:
        return VariantResult(None, self.config_id, self.role, outcome, 0.0)

    def record(
        self, task: TaskView, outcome: str, value: Any, exc: BaseException | None, error: ErrorInfo | None
    ) -> VariantResult:
        engine = self.primary.engine
        rule = self.primary.rule
        elapsed_ms = (time.perf_counter_ns() - task.started_ns) / 1e6 if task.started_ns else 0.0
        if self.span is None:
            attrs = self._attributes()
            self.span = engine.telemetry.start_candidate(self._span_name, task.primary_context(), attrs, kind=SpanKind.CLIENT)
        span = self.span
        info = self.info
        attrs, error = closing_attributes(span, outcome, exc, error)
        if outcome == A.OUTCOME_OK and info is not None:
            attrs.update(info.attributes())
            output_attributes(
                attrs, info.text, self._primary_hash, self._primary_text, engine.comparison(rule),
                lambda metric: engine.telemetry.count_metric_error(rule.name, metric),
            )
            on_span, as_event = content_mode()
            if on_span or as_event:
                out = {A.GEN_AI_OUTPUT_MESSAGES: self.primary._redact(json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": info.text}]}]))}
                if on_span:
                    attrs.update(out)
                if as_event:
                    span.add_event("gen_ai.client.inference.operation.details", out)
        span.set_attributes(attrs)
        span.end()
        engine.state(rule).release(
            self.target.model(self.request), info.input_tokens if info else None, info.output_tokens if info else None
        )
        engine.telemetry.count_run(rule.name, self.role, outcome)
        result = VariantResult(
            result=info.text if (outcome == A.OUTCOME_OK and info) else None,
            config_id=self.config_id,
            role=self.role,
            status=outcome,
            execution_time_ms=elapsed_ms,
            error=error,
            config=dict(self.config),
        )
        self.request = {}
        self._primary_text = NO_OUTPUT
        return result


def engine_from(kwargs: dict[str, Any]) -> ShadowEngine:
    """Build an engine from ``instrument(**kwargs)`` (what ``opentelemetry-instrument`` passes)."""
    rules = kwargs.get("rules")
    if rules is not None and not isinstance(rules, Rules | RulesSource | str | os.PathLike):
        rules = validate_rules(rules, "instrument(rules=...)")
    return ShadowEngine(
        rules,
        tracer_provider=kwargs.get("tracer_provider"),
        meter_provider=kwargs.get("meter_provider"),
        scheduler=kwargs.get("scheduler"),
        redact=kwargs.get("redact"),
    )



def flush(timeout: float | None = None) -> bool:
    """Wait until the zero-code candidates of sync calls have an outcome (True if all did in time)."""
    return default_scheduler().flush(timeout)


async def aflush(timeout: float | None = None) -> bool:
    """Await the zero-code candidates running on this event loop, then the sync ones.

    ``asyncio.run()`` cancels every task still running when the main coroutine returns, so a
    short async script ends with ``await aflush()`` to let its last candidates finish.
    """
    return await default_scheduler().aflush(timeout)
