"""``otel-shadow demo``: the seed's shadow example, end to end, on the embedded DuckDB default.

Two simulated models (plainly labelled: deterministic functions of the prompt, because a paid remote
model cannot exist here) with different latency, token counts, error rate and outputs. The
experiment runs ``requests`` times; spans go through the in-process DuckDB exporter (the same
writer the collector uses); then the report compares the two and gives its verdict.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from . import attributes as A
from .core import Config, Scheduler, Shadow
from .store.exporter import DuckDBSpanExporter

PROMPTS = [
    "Explain AI",
    "What is machine learning?",
    "Summarize the news about solar power",
    "Write a haiku about autumn",
    "How do vaccines work?",
    "Translate 'good morning' to French",
    "Give three tips for better sleep",
    "What is the capital of Australia?",
]

# (base latency s, output tokens per prompt word, error one in N, disagreement one in N)
SIMULATED = {"gpt-4": (0.004, 9, 0, 0), "gpt-5-beta": (0.0045, 7, 40, 4)}


def _digest(*parts: str) -> int:
    return int(hashlib.blake2b("|".join(parts).encode(), digest_size=4).hexdigest(), 16)


def make_simulated_model(tracer: Any) -> Any:
    def simulated_model(model: str, prompt: str, temperature: float, request_no: int) -> str:
        """A deterministic stand-in for an LLM call (SIMULATED), emitting a GenAI client span."""
        base, per_word, error_every, differ_every = SIMULATED[model]
        d = _digest(model, prompt, str(request_no))
        with tracer.start_as_current_span(f"chat {model}") as span:
            span.set_attribute(A.GEN_AI_OPERATION_NAME, "chat")
            span.set_attribute(A.GEN_AI_PROVIDER_NAME, "simulated")
            span.set_attribute(A.GEN_AI_REQUEST_MODEL, model)
            time.sleep(base + (d % 7) / 1000)
            if error_every and d % error_every == 0:
                raise RuntimeError(f"{model} (simulated) answered 503 Service Unavailable")
            words = len(prompt.split())
            span.set_attribute(A.GEN_AI_RESPONSE_MODEL, model)
            span.set_attribute(A.GEN_AI_USAGE_INPUT_TOKENS, 12 + words * 2)
            span.set_attribute(A.GEN_AI_USAGE_OUTPUT_TOKENS, words * per_word + d % 5)
            differs = differ_every and d % differ_every == 0
            return f"[simulated] answer to {prompt!r}" + (f" (phrased differently, {d % 10})" if differs else "")

    return simulated_model


def run_demo(db: str, requests: int, fresh: bool, echo: Any = print) -> None:
    if fresh:
        for suffix in ("", ".wal"):
            Path(db + suffix).unlink(missing_ok=True)
    exporter = DuckDBSpanExporter(db)
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-shadow-demo"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    simulated_model = make_simulated_model(provider.get_tracer("demo.llm"))
    shadow = Shadow(
        configs=[
            {"model": "gpt-4", "temperature": 0.5},  # primary: answers the user
            {"model": "gpt-5-beta", "temperature": 0.5},  # candidate: runs in the background
        ],
        tracer_provider=provider,
        scheduler=Scheduler(workers=4),
        replicate_rate=0.25,  # a quarter of the calls also re-run the primary: the noise floor
    )

    @shadow.experiment(name="generate")
    def generate(prompt: str, request_no: int, config: Config) -> str:
        return simulated_model(config["model"], prompt, config["temperature"], request_no)

    echo("Models are SIMULATED (deterministic local stand-ins for gpt-4 and gpt-5-beta).\n")
    with Shadow.run(generate, await_variants=True) as runner:
        result = runner("Explain AI", 0)
        echo(f"User sees:      {result.main_result.result}")
        for variant in result.variant_results:
            echo(f"Candidate saw:  {variant.result}  [{variant.status}, {variant.execution_time_ms:.1f} ms]")
    echo(f"\nServing {requests} requests; candidates run in the background…")
    # the caller never passes `config` (the experiment injects it), which the decorator's
    # declared type (the function's own signature) does not say
    serve: Callable[..., str] = generate
    tracer = provider.get_tracer("demo.app")
    for i in range(1, requests + 1):
        with tracer.start_as_current_span("POST /generate"):
            try:
                serve(PROMPTS[i % len(PROMPTS)], i)
            except RuntimeError:
                pass
    shadow.flush(60)
    provider.shutdown()  # flushes the batch processor and closes the database
    if exporter.failed:
        echo(f"warning: {exporter.failed} spans could not be written to {db}")
    echo(f"Stored {exporter.exported} spans in {db}.\n")


def run_llm_demo(
    db: str,
    requests: int,
    fresh: bool,
    llm: str,
    primary_model: str,
    candidate_model: str,
    echo: Any = print,
) -> None:
    """The zero-code path: real ``openai`` client calls, shadowed by the instrumentation.

    ``llm`` is ``local`` (the shipped SIMULATED server) or the base URL of any OpenAI-compatible
    endpoint (its key from ``OPENAI_API_KEY``).
    """
    import os

    try:
        import openai
    except ImportError as exc:
        from .errors import ConfigError

        raise ConfigError("the --llm demo needs the openai client: pip install 'otel-shadow[openai]'") from exc
    from .instrumentation import OpenAIShadowInstrumentor
    from .testing import LLMServer

    if fresh:
        for suffix in ("", ".wal"):
            Path(db + suffix).unlink(missing_ok=True)
    server = LLMServer().start() if llm == "local" else None
    base_url = server.openai_url if server is not None else llm
    exporter = DuckDBSpanExporter(db)
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-shadow-demo"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    scheduler = Scheduler(workers=4)
    rules = {
        "rules": [
            {
                "name": "demo-chat",
                "match": {"provider": "openai", "model": primary_model},
                "timeout": 60,
                "candidates": [{"model": candidate_model}],
            }
        ]
    }
    instrumentor = OpenAIShadowInstrumentor()
    instrumentor.instrument(rules=rules, tracer_provider=provider, scheduler=scheduler)
    try:
        client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "local-demo"))
        where = "the local SIMULATED model server" if server is not None else base_url
        echo(f"Shadowing {primary_model} → {candidate_model} through {where}, with no change to the calls.\n")
        tracer = provider.get_tracer("demo.app")
        for i in range(1, requests + 1):
            prompt = PROMPTS[i % len(PROMPTS)]
            with tracer.start_as_current_span("POST /chat"):
                if i % 4 == 0:  # some calls stream
                    stream = client.chat.completions.create(
                        model=primary_model, messages=[{"role": "user", "content": prompt}], stream=True
                    )
                    answer = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
                else:
                    answer = (
                        client.chat.completions.create(
                            model=primary_model, messages=[{"role": "user", "content": prompt}]
                        )
                        .choices[0]
                        .message.content
                        or ""
                    )
            if i == 1:
                echo(f"User sees:      {answer}")
        scheduler.flush(120)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
        if server is not None:
            server.stop()
    echo(f"\nStored {exporter.exported} spans in {db}.\n")
