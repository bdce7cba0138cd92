"""``otel-shadow demo``: the seed's shadow example, end to end, with two simulated models.

The models are simulated (plainly labelled): deterministic functions of the prompt with different
latency, token counts and outputs, because a paid remote model cannot exist here.
"""

from __future__ import annotations

import hashlib
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .core import Config, Scheduler, Shadow

PROMPTS = [
    "Explain AI",
    "What is machine learning?",
    "Summarize the news about solar power",
    "Write a haiku about autumn",
    "How do vaccines work?",
    "Translate 'good morning' to French",
]


def simulated_model(model: str, prompt: str, temperature: float) -> str:
    """A deterministic stand-in for an LLM (simulated): same input, same answer."""
    digest = int(hashlib.blake2b(f"{model}|{prompt}".encode(), digest_size=4).hexdigest(), 16)
    time.sleep((0.002 if model == "gpt-4" else 0.003) + (digest % 5) / 2000)
    if model != "gpt-4" and digest % 7 == 0:
        raise RuntimeError(f"{model} (simulated) returned 503")
    agrees = model == "gpt-4" or digest % 4 != 0
    return f"[simulated] answer to {prompt!r}" + ("" if agrees else f" (variant {digest % 10})")


def run_demo(db: str, requests: int, fresh: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    shadow = Shadow(
        configs=[{"model": "gpt-4", "temperature": 0.5}, {"model": "gpt-5-beta", "temperature": 0.5}],
        tracer_provider=provider,
        scheduler=Scheduler(workers=4),
    )

    @shadow.experiment(name="generate")
    def generate(prompt: str, config: Config) -> str:
        return simulated_model(config["model"], prompt, config["temperature"])

    with Shadow.run(generate, await_variants=True) as runner:
        result = runner("Explain AI")
        print(f"User sees: {result.main_result.result}")
        for variant in result.variant_results:
            print(f"Shadow ({variant.config['model']}): {variant.status} {variant.result!r}")
    for i in range(requests):
        generate(PROMPTS[i % len(PROMPTS)])
    shadow.flush(30)
    print(f"{len(exporter.get_finished_spans())} spans recorded")
