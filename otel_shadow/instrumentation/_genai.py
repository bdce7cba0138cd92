"""What each LLM API looks like to the instrumentation: requests, responses, streams, candidates.

One ``Adapter`` per provider × API (OpenAI chat completions, OpenAI responses, Anthropic messages).
It reads the request (model, temperature, max tokens, messages), reads a response or a stream of
chunks into an ``Info`` (output text, response model, id, finish reasons, token usage, time to
first chunk), and builds a candidate's request from the user's (a copy: the user's objects are
never mutated), translating it when the candidate uses the other provider.

GenAI semantic conventions: https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any

from .. import attributes as A
from .rules import CandidateRule

__all__ = ["ADAPTERS", "Accumulator", "Adapter", "Info", "unwrap_raw"]

_OMIT_NAMES = ("NotGiven", "Omit", "NoneType")
_DROP_HEADERS = {"traceparent", "tracestate", "baggage"}


def given(value: Any) -> bool:
    """False for None and the SDKs' ``NOT_GIVEN`` / ``omit`` sentinels."""
    return value is not None and type(value).__name__ not in _OMIT_NAMES


@dataclass
class Info:
    """What one LLM execution produced."""

    text: str = ""
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: float | None = None
    complete: bool = True  # False when a stream was closed before its end

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.response_model:
            attrs[A.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.response_id:
            attrs[A.GEN_AI_RESPONSE_ID] = self.response_id
        if self.finish_reasons:
            attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(self.finish_reasons)
        if self.input_tokens is not None:
            attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = int(self.input_tokens)
        if self.output_tokens is not None:
            attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = int(self.output_tokens)
        if self.ttft_ms is not None:
            attrs[A.SHADOW_TIME_TO_FIRST_CHUNK] = self.ttft_ms
            attrs[A.GEN_AI_TIME_TO_FIRST_CHUNK] = self.ttft_ms / 1000
        return attrs


def _dump(item: Any) -> Any:
    """A tool call as plain data (a pydantic model's dump, else its text)."""
    dump = getattr(item, "model_dump", None)
    return dump() if callable(dump) else str(item)


def unwrap_raw(result: Any) -> tuple[Any, bool]:
    """``(parsed, observable)`` for a ``with_raw_response`` result; streamed raw responses are not parsed."""
    if hasattr(result, "http_response") and callable(getattr(result, "parse", None)):
        if getattr(result, "_stream", False):
            return None, False
        try:
            return result.parse(), True  # parse() caches: the user's later call costs nothing
        except Exception:
            return None, False
    return result, True


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            _text(part.get("text", "") if isinstance(part, dict) else getattr(part, "text", "")) for part in content
        )
    return ""


class Accumulator:
    """Reads a stream chunk by chunk; per-chunk work is a type check and an append."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.parts: list[str] = []
        self.info = Info()
        self.started = time.perf_counter()

    def feed(self, item: Any) -> None:
        if self.info.ttft_ms is None:
            self.info.ttft_ms = (time.perf_counter() - self.started) * 1000
        self.adapter.feed(self, item)

    def result(self, complete: bool = True) -> Info:
        self.info.text = "".join(self.parts)
        self.info.complete = complete
        return self.info


class Adapter:
    provider = ""
    operation = ""  # our operation names: chat, responses, messages
    genai_operation = "chat"

    def model(self, kwargs: dict[str, Any]) -> str | None:
        value = kwargs.get("model")
        return str(value) if given(value) else None

    def is_stream(self, method: str, kwargs: dict[str, Any]) -> bool:
        return method == "stream" or kwargs.get("stream") is True

    def request_attributes(self, kwargs: dict[str, Any], instance: Any) -> dict[str, Any]:
        attrs: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: self.genai_operation, A.GEN_AI_PROVIDER_NAME: self.provider}
        model = self.model(kwargs)
        if model:
            attrs[A.GEN_AI_REQUEST_MODEL] = model
        temperature = kwargs.get("temperature")
        if given(temperature):
            attrs[A.GEN_AI_REQUEST_TEMPERATURE] = float(temperature)  # type: ignore[arg-type]  # given(): a number, not None
        max_tokens = self.max_tokens(kwargs)
        if max_tokens is not None:
            attrs[A.GEN_AI_REQUEST_MAX_TOKENS] = int(max_tokens)
        client = getattr(instance, "_client", None)
        base_url = getattr(client, "base_url", None)
        if base_url is not None:
            host, port = getattr(base_url, "host", None), getattr(base_url, "port", None)
            if host:
                attrs[A.SERVER_ADDRESS] = host
            if port and port not in (80, 443):
                attrs[A.SERVER_PORT] = int(port)
        return attrs

    def config_of(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The request's comparable configuration (its config id is a hash of this)."""
        config: dict[str, Any] = {"provider": self.provider, "model": self.model(kwargs)}
        temperature = kwargs.get("temperature")
        if given(temperature):
            config["temperature"] = temperature
        max_tokens = self.max_tokens(kwargs)
        if max_tokens is not None:
            config["max_tokens"] = max_tokens
        system = self.system_prompt(kwargs)
        if system:
            config["system_prompt"] = system
        return config

    # per API ----------------------------------------------------------------------------------------
    def max_tokens(self, kwargs: dict[str, Any]) -> int | None:
        raise NotImplementedError

    def system_prompt(self, kwargs: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def input_messages(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        """The request's messages in the GenAI semantic conventions' shape (content capture)."""
        return [
            {"role": m.get("role", "user"), "parts": [{"type": "text", "content": _text(m.get("content"))}]}
            for m in self.conversation(kwargs)
        ]

    def response_info(self, response: Any) -> Info:
        raise NotImplementedError

    def feed(self, acc: Accumulator, item: Any) -> None:
        raise NotImplementedError

    def apply(self, request: dict[str, Any], candidate: CandidateRule) -> dict[str, Any]:
        """The candidate's overrides on a copy of a request of this API."""
        raise NotImplementedError

    # shared ---------------------------------------------------------------------------------------------
    def candidate_request(self, kwargs: dict[str, Any], candidate: CandidateRule, target: Adapter) -> dict[str, Any]:
        request = {k: v for k, v in kwargs.items() if given(v)}
        headers = request.get("extra_headers")
        if isinstance(headers, dict):
            request["extra_headers"] = {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}
        request = copy.deepcopy(request)
        if target is not self:
            request = target.from_common(self.to_common(request))
        return target.apply(request, candidate)

    def conversation(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The request's messages as dicts (system ones included)."""
        return [m for m in request.get("messages") or [] if isinstance(m, dict)]

    def to_common(self, request: dict[str, Any]) -> dict[str, Any]:
        """A provider-neutral request: system, messages (role, text), model, temperature, max_tokens, stream."""
        return {
            "system": self.system_prompt(request),
            "messages": [
                {"role": "assistant" if m.get("role") == "assistant" else "user", "content": _text(m.get("content"))}
                for m in self.conversation(request)
                if m.get("role") not in ("system", "developer")
            ],
            "model": request.get("model"),
            "temperature": request.get("temperature"),
            "max_tokens": self.max_tokens(request),
            "stream": request.get("stream") is True,
        }

    def from_common(self, common: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _finish_common(request: dict[str, Any], common: dict[str, Any], max_tokens_key: str) -> dict[str, Any]:
        """Temperature, max tokens (under this API's name) and streaming, from a neutral request."""
        if common.get("temperature") is not None:
            request["temperature"] = common["temperature"]
        if common.get("max_tokens") is not None:
            request[max_tokens_key] = common["max_tokens"]
        if common.get("stream"):
            request["stream"] = True
        return request


class OpenAIChat(Adapter):
    provider, operation = "openai", "chat"

    def max_tokens(self, kwargs: dict[str, Any]) -> int | None:
        for key in ("max_completion_tokens", "max_tokens"):
            if given(kwargs.get(key)):
                return int(kwargs[key])
        return None

    def system_prompt(self, kwargs: dict[str, Any]) -> str | None:
        messages = kwargs.get("messages") or []
        parts = [
            _text(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") in ("system", "developer")
        ]
        return "\n".join(parts) or None

    def response_info(self, response: Any) -> Info:
        info = Info(response_model=getattr(response, "model", None), response_id=getattr(response, "id", None))
        choices = getattr(response, "choices", None) or []
        if choices:
            message = getattr(choices[0], "message", None)
            info.text = getattr(message, "content", None) or ""
            tool_calls = getattr(message, "tool_calls", None)
            if tool_calls and not info.text:
                info.text = json.dumps([_dump(t) for t in tool_calls], sort_keys=True, default=str)
            info.finish_reasons = [str(c.finish_reason) for c in choices if getattr(c, "finish_reason", None)]
        usage = getattr(response, "usage", None)
        if usage is not None:
            info.input_tokens = getattr(usage, "prompt_tokens", None)
            info.output_tokens = getattr(usage, "completion_tokens", None)
        return info

    def feed(self, acc: Accumulator, item: Any) -> None:
        info = acc.info
        if info.response_model is None:
            info.response_model = getattr(item, "model", None)
            info.response_id = getattr(item, "id", None)
        for choice in getattr(item, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None) if delta is not None else None
            if content:
                acc.parts.append(content)
            if getattr(choice, "finish_reason", None):
                info.finish_reasons.append(str(choice.finish_reason))
        usage = getattr(item, "usage", None)
        if usage is not None:
            info.input_tokens = getattr(usage, "prompt_tokens", None)
            info.output_tokens = getattr(usage, "completion_tokens", None)

    def apply(self, request: dict[str, Any], candidate: CandidateRule) -> dict[str, Any]:
        if candidate.model:
            request["model"] = candidate.model
        if candidate.temperature is not None:
            request["temperature"] = candidate.temperature
        if candidate.max_tokens is not None:
            key = (
                "max_tokens"
                if "max_tokens" in request and "max_completion_tokens" not in request
                else "max_completion_tokens"
            )
            request[key] = candidate.max_tokens
        if candidate.system_prompt is not None:
            messages = [
                m
                for m in request.get("messages", [])
                if not (isinstance(m, dict) and m.get("role") in ("system", "developer"))
            ]
            request["messages"] = [{"role": "system", "content": candidate.system_prompt}, *messages]
        if request.get("stream") is True:  # ask for usage so the candidate's tokens are known
            request["stream_options"] = {**(request.get("stream_options") or {}), "include_usage": True}
        request.update(copy.deepcopy(candidate.extra))
        return request

    def from_common(self, common: dict[str, Any]) -> dict[str, Any]:
        messages = ([{"role": "system", "content": common["system"]}] if common.get("system") else []) + common[
            "messages"
        ]
        return self._finish_common({"model": common["model"], "messages": messages}, common, "max_tokens")


class OpenAIResponses(Adapter):
    provider, operation = "openai", "responses"

    def max_tokens(self, kwargs: dict[str, Any]) -> int | None:
        return int(kwargs["max_output_tokens"]) if given(kwargs.get("max_output_tokens")) else None

    def system_prompt(self, kwargs: dict[str, Any]) -> str | None:
        value = kwargs.get("instructions")
        return str(value) if given(value) and value else None

    def _messages(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        raw = kwargs.get("input")
        if isinstance(raw, str):
            return [{"role": "user", "content": raw}]
        return [m for m in (raw or []) if isinstance(m, dict)]

    def response_info(self, response: Any) -> Info:
        info = Info(response_model=getattr(response, "model", None), response_id=getattr(response, "id", None))
        try:
            info.text = response.output_text or ""
        except Exception:
            info.text = ""
        status = getattr(response, "status", None)
        if status:
            info.finish_reasons = [str(status)]
        usage = getattr(response, "usage", None)
        if usage is not None:
            info.input_tokens = getattr(usage, "input_tokens", None)
            info.output_tokens = getattr(usage, "output_tokens", None)
        return info

    def feed(self, acc: Accumulator, item: Any) -> None:
        kind = getattr(item, "type", "")
        if kind == "response.output_text.delta":
            acc.parts.append(getattr(item, "delta", "") or "")
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            final = self.response_info(item.response)
            final.ttft_ms = acc.info.ttft_ms
            acc.info = final
            acc.parts = [final.text]

    def apply(self, request: dict[str, Any], candidate: CandidateRule) -> dict[str, Any]:
        if candidate.model:
            request["model"] = candidate.model
        if candidate.temperature is not None:
            request["temperature"] = candidate.temperature
        if candidate.max_tokens is not None:
            request["max_output_tokens"] = candidate.max_tokens
        if candidate.system_prompt is not None:
            request["instructions"] = candidate.system_prompt
        request.update(copy.deepcopy(candidate.extra))
        return request

    def conversation(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        return self._messages(request)

    def from_common(self, common: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": common["model"], "input": common["messages"]}
        if common.get("system"):
            request["instructions"] = common["system"]
        return self._finish_common(request, common, "max_output_tokens")


class AnthropicMessages(Adapter):
    provider, operation = "anthropic", "messages"

    def max_tokens(self, kwargs: dict[str, Any]) -> int | None:
        return int(kwargs["max_tokens"]) if given(kwargs.get("max_tokens")) else None

    def system_prompt(self, kwargs: dict[str, Any]) -> str | None:
        value = kwargs.get("system")
        return _text(value) or None if given(value) else None

    def response_info(self, response: Any) -> Info:
        info = Info(response_model=getattr(response, "model", None), response_id=getattr(response, "id", None))
        info.text = "".join(getattr(b, "text", "") or "" for b in (getattr(response, "content", None) or ()))
        if getattr(response, "stop_reason", None):
            info.finish_reasons = [str(response.stop_reason)]
        usage = getattr(response, "usage", None)
        if usage is not None:
            info.input_tokens = getattr(usage, "input_tokens", None)
            info.output_tokens = getattr(usage, "output_tokens", None)
        return info

    def feed(self, acc: Accumulator, item: Any) -> None:
        kind = getattr(item, "type", "")
        info = acc.info
        if kind == "content_block_delta":
            text = getattr(getattr(item, "delta", None), "text", None)
            if text:
                acc.parts.append(text)
        elif kind == "message_start":
            message = item.message
            info.response_model, info.response_id = message.model, message.id
            usage = getattr(message, "usage", None)
            if usage is not None:
                info.input_tokens = usage.input_tokens
        elif kind == "message_delta":
            stop = getattr(getattr(item, "delta", None), "stop_reason", None)
            if stop:
                info.finish_reasons = [str(stop)]
            usage = getattr(item, "usage", None)
            if usage is not None and getattr(usage, "output_tokens", None) is not None:
                info.output_tokens = usage.output_tokens

    def apply(self, request: dict[str, Any], candidate: CandidateRule) -> dict[str, Any]:
        if candidate.model:
            request["model"] = candidate.model
        if candidate.temperature is not None:
            request["temperature"] = candidate.temperature
        if candidate.max_tokens is not None:
            request["max_tokens"] = candidate.max_tokens
        request.setdefault("max_tokens", 1024)  # required by the Messages API
        if candidate.system_prompt is not None:
            request["system"] = candidate.system_prompt
        request.update(copy.deepcopy(candidate.extra))
        return request

    def from_common(self, common: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": common["model"], "messages": common["messages"]}
        if common.get("system"):
            request["system"] = common["system"]
        request = self._finish_common(request, common, "max_tokens")
        request.setdefault("max_tokens", 1024)  # required by the Messages API
        return request


ADAPTERS: dict[tuple[str, str], Adapter] = {
    ("openai", "chat"): OpenAIChat(),
    ("openai", "responses"): OpenAIResponses(),
    ("anthropic", "messages"): AnthropicMessages(),
}

DEFAULT_OPERATION = {"openai": "chat", "anthropic": "messages"}
