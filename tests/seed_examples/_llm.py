"""Local stand-ins for the seed's LLM calls (a paid remote model cannot exist in tests).

Deterministic: the same model, prompt and temperature always give the same text, so tests can
assert what the user saw and what each candidate returned.
"""

import asyncio


def llm_call(model: str, prompt: str, temperature: float = 0.5, **_: object) -> str:
    if model == "broken-model":
        raise RuntimeError(f"{model} is unavailable")
    return f"[{model}@{temperature}] {prompt}"


def make_llm_call(model: str, prompt: str) -> str:
    return llm_call(model, prompt)


def llm_api_call(model: str, prompt: str, temperature: float = 0.5, max_tokens: int = 256) -> str:
    return llm_call(model, prompt, temperature)[:max_tokens]


async def async_llm_call(model: str, prompt: str) -> str:
    await asyncio.sleep(0.001)
    return llm_call(model, prompt)
