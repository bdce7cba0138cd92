"""The candidate call: what one candidate (or replicate) of a rule does on the scheduler.

It calls the API's *original* method (beneath every instrumentation) on a candidate client
(``clients``), with the rule's overrides applied to a copy of the primary's request, in a context
built from scratch: so it is never shadowed again and no other instrumentation folds it into the
primary. Its span is the GenAI client span of that call. It is a ``core.tasks.Job``: the core's
``CandidateTask`` runs it and records its outcome once.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind

from .. import attributes as A
from ..core.candidate import NO_OUTPUT, closing_attributes, output_attributes
from ..core.config import config_id_of, flatten
from ..core.observation import ErrorInfo, VariantResult
from ..core.tasks import TaskView
from ..core.telemetry import candidate_context
from ._genai import ADAPTERS, DEFAULT_OPERATION, Accumulator, Info
from ._wrapt import original
from .capture import CONTENT_EVENT, content_mode
from .rules import CandidateRule

if TYPE_CHECKING:
    from .primary_call import PrimaryCall

__all__ = ["REPLICATE", "LLMCandidate"]

_RESOURCE = {
    "chat": lambda client: client.chat.completions,
    "responses": lambda client: client.responses,
    "messages": lambda client: client.messages,
}

REPLICATE = CandidateRule()  # no overrides: the primary's own request


class LLMCandidate:
    """What one candidate LLM call does (a ``core.tasks.Job``), run on the scheduler."""

    __slots__ = (
        "primary",
        "candidate",
        "target",
        "request",
        "method",
        "span",
        "info",
        "config",
        "config_id",
        "_span_name",
        "is_async",
        "_primary_hash",
        "role",
        "_primary_text",
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
        self.target = (
            source
            if target_provider == source.provider
            else ADAPTERS[(target_provider, DEFAULT_OPERATION[target_provider])]
        )
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
            client = primary.engine.clients.foreign_client(self.target.provider, candidate, rule, self.is_async)
        else:
            options: dict[str, Any] = {"max_retries": rule.max_retries, "timeout": rule.timeout}
            if candidate.base_url:
                options["base_url"] = candidate.base_url
            if candidate.api_key_env:
                options["api_key"] = os.environ.get(candidate.api_key_env, "unset")
            client = primary.engine.clients.candidate_client(primary.instance._client, options)
        return _RESOURCE[self.target.operation](client)

    def start(self, task: TaskView) -> object:
        attrs = self._attributes()
        attrs[A.SHADOW_QUEUE_MS] = (task.started_ns - task.enqueued_ns) / 1e6
        self.span = self.primary.engine.telemetry.start_candidate(
            self._span_name, task.primary_context(), attrs, kind=SpanKind.CLIENT
        )
        on_span, as_event = content_mode()
        if on_span or as_event:
            content = {
                A.GEN_AI_INPUT_MESSAGES: self.primary.redact(
                    json.dumps(self.target.input_messages(self.request), default=str)
                )
            }
            if on_span:
                self.span.set_attributes(content)
            if as_event:
                self.span.add_event(CONTENT_EVENT, content)
        return otel_context.attach(candidate_context(self.span, None))

    def call(self, task: TaskView) -> Any:
        resource = self._resource()
        result = original(resource, self.method)(resource, **self.request)
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

    async def acall(self, task: TaskView) -> Any:
        resource = self._resource()
        result = await original(resource, self.method)(resource, **self.request)
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

    def fallback(self, task: TaskView, outcome: str) -> VariantResult:
        return VariantResult(None, self.config_id, self.role, outcome, 0.0)

    def record(
        self, task: TaskView, outcome: str, value: Any, exc: BaseException | None, error: ErrorInfo | None
    ) -> VariantResult:
        engine = self.primary.engine
        rule = self.primary.rule
        elapsed_ms = (time.perf_counter_ns() - task.started_ns) / 1e6 if task.started_ns else 0.0
        if self.span is None:
            attrs = self._attributes()
            self.span = engine.telemetry.start_candidate(
                self._span_name, task.primary_context(), attrs, kind=SpanKind.CLIENT
            )
        span = self.span
        info = self.info
        attrs, error = closing_attributes(span, outcome, exc, error)
        if outcome == A.OUTCOME_OK and info is not None:
            attrs.update(info.attributes())
            output_attributes(
                attrs,
                info.text,
                self._primary_hash,
                self._primary_text,
                engine.comparison(rule),
                lambda metric: engine.telemetry.count_metric_error(rule.name, metric),
            )
            on_span, as_event = content_mode()
            if on_span or as_event:
                out = {
                    A.GEN_AI_OUTPUT_MESSAGES: self.primary.redact(
                        json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": info.text}]}])
                    )
                }
                if on_span:
                    attrs.update(out)
                if as_event:
                    span.add_event(CONTENT_EVENT, out)
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
