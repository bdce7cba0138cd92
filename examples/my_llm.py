"""The user's own LLM functions that the seed's examples call (``llm_call``, ``make_llm_call``…).

They call the real ``openai`` SDK, which reads its endpoint and key from the environment
(``OPENAI_BASE_URL``, ``OPENAI_API_KEY``): the real API, or any OpenAI-compatible server, such as
the local one with SIMULATED models that the examples are tested against:

    python -m otel_shadow.testing.llm_server --port 8099 --any-model &
    export OPENAI_BASE_URL=http://127.0.0.1:8099/v1 OPENAI_API_KEY=local

Nothing here knows about otel-shadow: shadowing happens around these functions, not inside them.
"""

from __future__ import annotations

import functools
from typing import Any

import openai


@functools.lru_cache(maxsize=1)
def _client() -> openai.OpenAI:
    return openai.OpenAI()  # one client (one connection pool) for the process


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def llm_call(model: str, prompt: str, temperature: float | None = None, **request: Any) -> str:
    """The model's answer to ``prompt``; ``request`` takes any other field (``max_tokens``…)."""
    if temperature is not None:
        request["temperature"] = temperature
    response = _client().chat.completions.create(model=model, messages=_messages(prompt), **request)
    return response.choices[0].message.content or ""


def make_llm_call(model: str, prompt: str) -> str:
    return llm_call(model, prompt)


def llm_api_call(model: str, prompt: str, temperature: float | None = None, max_tokens: int | None = None) -> str:
    return llm_call(model, prompt, temperature, **({} if max_tokens is None else {"max_tokens": max_tokens}))


async def async_llm_call(model: str, prompt: str) -> str:
    # An async client belongs to the event loop it first ran on, so each call opens its own.
    async with openai.AsyncOpenAI() as client:
        response = await client.chat.completions.create(model=model, messages=_messages(prompt))
    return response.choices[0].message.content or ""
