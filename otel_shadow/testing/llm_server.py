"""A local OpenAI- and Anthropic-compatible HTTP server with SIMULATED models, for tests and demos.

It speaks enough of both APIs for their official Python clients to work unchanged over HTTP:
OpenAI ``/v1/chat/completions``, ``/v1/responses`` and ``/v1/embeddings``, Anthropic ``/v1/messages``, each plain or
streamed (server-sent events, in each API's own event format). Models are simulated: the answer is
a deterministic function of the model and the prompt, with configurable latency, time per streamed
chunk, token counts, errors and rate limits. Nothing here is a real model.

    with LLMServer() as server:
        client = openai.OpenAI(base_url=server.openai_url, api_key="test")
        client.chat.completions.create(model="sim-large", messages=[{"role": "user", "content": "hi"}])

Run standalone: ``python -m otel_shadow.testing.llm_server --port 8099``. A name it does not know
is a 404 (``model_not_found``), as with a real API; ``--any-model`` (``LLMServer(any_model=True)``)
answers every name instead, as a plain model whose answers are its own, so an application written
for other model names (``gpt-4``, ``claude-3``…) runs against it unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import struct
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ._serve import ThreadedServer

__all__ = ["LLMServer", "SimulatedModel", "DEFAULT_MODELS"]


@dataclass(frozen=True)
class SimulatedModel:
    """How a simulated model behaves."""

    latency_ms: float = 5.0  # before the first byte (or the whole answer)
    chunk_ms: float = 1.0  # between streamed chunks
    words_per_chunk: int = 2
    style: str = "plain"  # outputs of models with the same style agree
    verbosity: int = 1  # repeats the answer: more output tokens
    status: int = 200  # 429, 500… to simulate failures
    fail_every: int = 0  # fail one request in N (deterministically by prompt)


DEFAULT_MODELS: dict[str, SimulatedModel] = {
    # OpenAI-style names
    "gpt-4o": SimulatedModel(latency_ms=8, style="plain"),
    "gpt-4o-mini": SimulatedModel(latency_ms=4, style="plain"),
    "gpt-5-beta": SimulatedModel(latency_ms=10, style="terse"),
    # Anthropic-style names
    "claude-sonnet": SimulatedModel(latency_ms=8, style="plain"),
    "claude-haiku": SimulatedModel(latency_ms=4, style="plain", verbosity=2),
    # failure modes
    "sim-rate-limited": SimulatedModel(status=429),
    "sim-broken": SimulatedModel(status=500),
    "sim-slow": SimulatedModel(latency_ms=3000),
    "sim-flaky": SimulatedModel(latency_ms=2, fail_every=3),
    # pairwise judges (otel-shadow score): they read <answer_A>/<answer_B> from the prompt and answer
    # "Verdict: A|B|tie"; sim-judge prefers the answer with more words (equal: tie), whatever its
    # position; sim-judge-first always says A (a judge with total position bias)
    "sim-judge": SimulatedModel(latency_ms=1, style="judge"),
    "sim-judge-first": SimulatedModel(latency_ms=1, style="judge-first"),
    # an embeddings model (/v1/embeddings): hashed bag of words, so texts sharing words are close
    "sim-embed": SimulatedModel(latency_ms=1, style="embedding"),
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text_of(part.get("text", "") if isinstance(part, dict) else part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return ""


def _prompt(messages: Iterable[Any]) -> tuple[str, int]:
    """The last user message and the word count of everything sent."""
    words = 0
    last = ""
    for message in messages:
        if isinstance(message, dict):
            text = _text_of(message.get("content", ""))
            words += len(text.split())
            if message.get("role") == "user":
                last = text
    return last, max(1, words)


_JUDGED = re.compile(r"<answer_([AB])>(.*?)</answer_\1>", re.DOTALL)
EMBEDDING_DIMENSIONS = 256


def judge_answer(prompt: str, position_biased: bool = False) -> str:
    """A simulated pairwise judge's answer: the answer with more words wins, equal is a tie."""
    answers = dict(_JUDGED.findall(prompt))
    if position_biased:
        return "Answer A comes first.\nVerdict: A"
    a, b = len(answers.get("A", "").split()), len(answers.get("B", "").split())
    if a == b:
        return "Both answers are equally complete.\nVerdict: tie"
    winner = "A" if a > b else "B"
    return f"Answer {winner} is more complete.\nVerdict: {winner}"


def embed_text(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector: each lower-cased word adds ±1 at a hashed position."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[h % dimensions] += 1.0 if (h >> 32) & 1 else -1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def answer(model: str, spec: SimulatedModel, prompt: str, system: str = "") -> str:
    """The simulated answer: deterministic in (style, prompt, system prompt)."""
    if spec.style in ("judge", "judge-first"):
        return judge_answer(prompt, position_biased=spec.style == "judge-first")
    digest = hashlib.blake2b(f"{spec.style}|{system}|{prompt}".encode(), digest_size=4).hexdigest()
    if spec.style == "terse":
        base = f"In short: {prompt.strip()[:60]} ({digest[:4]})."
    else:
        base = f"Here is an answer about {prompt.strip()[:80]!r}. Reference {digest}."
    return " ".join([base] * spec.verbosity)


@dataclass
class _Call:
    model: str
    spec: SimulatedModel
    prompt: str
    input_tokens: int
    text: str
    output_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.output_tokens = len(self.text.split())


class LLMServer:
    """Starts the simulated API on 127.0.0.1 (a free port unless given) in a background thread."""

    def __init__(
        self,
        models: dict[str, SimulatedModel] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        any_model: bool = False,
    ) -> None:
        self.models = dict(DEFAULT_MODELS if models is None else models)
        self.any_model = any_model
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []  # every request body received (for tests)
        self._server: ThreadedServer | None = None

    # --- URLs ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def set_model(self, name: str, **changes: Any) -> None:
        self.models[name] = replace(self.models.get(name, SimulatedModel()), **changes)

    def spec(self, model: str) -> SimulatedModel | None:
        """How ``model`` behaves here; None when the server does not know it (a 404).

        With ``any_model``, an unknown name is a plain model styled by its own name: two unknown
        models disagree, and each answers the same prompt the same way every time.
        """
        spec = self.models.get(model)
        if spec is None and self.any_model:
            spec = SimulatedModel(style=f"model:{model}")
        return spec

    # --- the app --------------------------------------------------------------------------------------
    def _resolve(self, body: dict[str, Any], messages: list[Any], system: str = "") -> _Call | Response:
        model = str(body.get("model", ""))
        spec = self.spec(model)
        if spec is None:
            return JSONResponse(
                {
                    "error": {
                        "message": f"The model `{model}` does not exist (simulated server)",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
                status_code=404,
            )
        prompt, words = _prompt(messages)
        failing = spec.status != 200
        if (
            spec.fail_every
            and int(hashlib.blake2b(prompt.encode(), digest_size=2).hexdigest(), 16) % spec.fail_every == 0
        ):
            failing = True
        if failing:
            status = spec.status if spec.status != 200 else 500
            headers = {"retry-after": "1"} if status == 429 else None
            kind = "rate_limit_error" if status == 429 else "api_error"
            return JSONResponse(
                {"error": {"message": f"simulated {status} from {model}", "type": kind}},
                status_code=status,
                headers=headers,
            )
        return _Call(model, spec, prompt, words + len(system.split()), answer(model, spec, prompt, system))

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"path": "/v1/chat/completions", **body})
        messages = body.get("messages", [])
        system = " ".join(
            _text_of(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") in ("system", "developer")
        )
        call = self._resolve(body, messages, system)
        if isinstance(call, Response):
            return call
        await asyncio.sleep(call.spec.latency_ms / 1000)
        created, ident = (
            int(time.time()),
            f"chatcmpl-sim-{hashlib.blake2b(call.text.encode(), digest_size=6).hexdigest()}",
        )
        usage = {
            "prompt_tokens": call.input_tokens,
            "completion_tokens": call.output_tokens,
            "total_tokens": call.input_tokens + call.output_tokens,
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": call.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": call.text, "refusal": None},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                data = {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": call.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                }
                return f"data: {json.dumps(data)}\n\n".encode()

            yield chunk({"role": "assistant", "content": ""})
            for piece in _pieces(call.text, call.spec.words_per_chunk):
                await asyncio.sleep(call.spec.chunk_ms / 1000)
                yield chunk({"content": piece})
            yield chunk({}, "stop")
            if include_usage:
                data = {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": call.model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(data)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _responses(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"path": "/v1/responses", **body})
        raw = body.get("input", "")
        messages = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
        system = str(body.get("instructions") or "")
        call = self._resolve(body, messages, system)
        if isinstance(call, Response):
            return call
        await asyncio.sleep(call.spec.latency_ms / 1000)
        ident = f"resp_sim_{hashlib.blake2b(call.text.encode(), digest_size=6).hexdigest()}"
        usage = {
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "total_tokens": call.input_tokens + call.output_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        item = {
            "type": "message",
            "id": "msg_sim",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": call.text, "annotations": []}],
        }
        full = {
            "id": ident,
            "object": "response",
            "created_at": time.time(),
            "model": call.model,
            "status": "completed",
            "output": [item],
            "usage": usage,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "instructions": body.get("instructions"),
            "temperature": body.get("temperature"),
            "error": None,
            "incomplete_details": None,
            "metadata": {},
            "top_p": None,
        }
        if not body.get("stream"):
            return JSONResponse(full)

        async def events() -> AsyncIterator[bytes]:
            seq = 0

            def event(kind: str, data: dict[str, Any]) -> bytes:
                nonlocal seq
                seq += 1
                return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': seq, **data})}\n\n".encode()

            yield event(
                "response.created", {"response": {**full, "status": "in_progress", "output": [], "usage": None}}
            )
            for piece in _pieces(call.text, call.spec.words_per_chunk):
                await asyncio.sleep(call.spec.chunk_ms / 1000)
                yield event(
                    "response.output_text.delta",
                    {"item_id": "msg_sim", "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []},
                )
            yield event("response.completed", {"response": full})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"path": "/v1/messages", **body})
        system = _text_of(body.get("system", ""))
        call = self._resolve(body, body.get("messages", []), system)
        if isinstance(call, Response):
            if call.status_code == 404:
                return JSONResponse(
                    {
                        "type": "error",
                        "error": {
                            "type": "not_found_error",
                            "message": json.loads(bytes(call.body))["error"]["message"],
                        },
                    },
                    status_code=404,
                )
            return call
        await asyncio.sleep(call.spec.latency_ms / 1000)
        ident = f"msg_sim_{hashlib.blake2b(call.text.encode(), digest_size=6).hexdigest()}"
        message = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [{"type": "text", "text": call.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens},
        }
        if not body.get("stream"):
            return JSONResponse(message)

        async def events() -> AsyncIterator[bytes]:
            def event(kind: str, data: dict[str, Any]) -> bytes:
                return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

            start = {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": call.input_tokens, "output_tokens": 1},
            }
            yield event("message_start", {"message": start})
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for piece in _pieces(call.text, call.spec.words_per_chunk):
                await asyncio.sleep(call.spec.chunk_ms / 1000)
                yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": call.output_tokens},
                },
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"path": "/v1/embeddings", **body})
        model = str(body.get("model", ""))
        spec = self.spec(model)
        if spec is None or spec.style != "embedding":
            return JSONResponse(
                {
                    "error": {
                        "message": f"The model `{model}` does not exist or is not an embeddings model (simulated server)",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
                status_code=404,
            )
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            return JSONResponse(
                {
                    "error": {
                        "message": "input must be a non-empty string or a list of non-empty strings",
                        "type": "invalid_request_error",
                    }
                },
                status_code=400,
            )
        await asyncio.sleep(spec.latency_ms / 1000)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed_text(text)
            value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/messages", self._messages, methods=["POST"]),
            ]
        )

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> LLMServer:
        self._server = ThreadedServer(self.app(), self.host, self.port, name="llm-server")
        self.port = self._server.start("the simulated LLM server")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(5)

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pieces(text: str, words: int) -> list[str]:
    parts = text.split(" ")
    out = []
    for i in range(0, len(parts), words):
        piece = " ".join(parts[i : i + words])
        out.append(piece if i + words >= len(parts) else piece + " ")
    return out


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Simulated OpenAI/Anthropic-compatible server (SIMULATED models).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--any-model", action="store_true", help="answer any model name (a plain simulated model) instead of a 404"
    )
    args = parser.parse_args()
    server = LLMServer(host=args.host, port=args.port, any_model=args.any_model).start()
    print(f"simulated models on {server.openai_url} (OpenAI) and {server.anthropic_url} (Anthropic); Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
