"""What the instrumentation adds to the user's LLM call, against OpenTelemetry's own (issue 5's bars).

Against the shipped simulated server (a separate process, zero model latency), in the same run,
in alternating blocks of calls:

  * non-streamed ``chat.completions.create``: our added time (primary span + candidate dispatch)
    ≤ 1.2× what ``opentelemetry-instrumentation-genai-openai`` alone adds (~220 µs on this class of
    machine)
  * streamed: the user's time to first chunk with our instrumentation / without: ≤ 1.05

Candidates run in the background; each call is followed by an untimed wait until the pool is idle,
so the figures are the caller's own cost, not the candidates' work competing for the CPU. The
mode changes every 5 calls (instrument/uninstrument, untimed; the first call after a switch is not
counted): long blocks per mode drift apart on this shared machine by more than the effect measured.
Time to first chunk is measured twice: with a zero-latency simulated model (the worst case: a
~3 ms baseline) and with a 20 ms simulated time to first token (real models take 200 ms–2 s).

Run: python benchmarks/bench_instrumentation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import openai
from _harness import save
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from otel_shadow import Scheduler
from otel_shadow.instrumentation import OpenAIShadowInstrumentor

MESSAGES = [{"role": "user", "content": "What is shadow testing in production?"}]
RULES = {
    "rules": [
        {"name": "bench", "match": {"provider": "openai", "model": "gpt-4o-mini"}, "candidates": [{"model": "gpt-4o"}]},
        {
            "name": "bench-20ms",
            "match": {"provider": "openai", "model": "sim-20ms"},
            "candidates": [{"model": "gpt-4o"}],
        },
    ]
}


def start_server() -> tuple[subprocess.Popen[str], str]:
    code = (
        "import sys, time\n"
        "from otel_shadow.testing import LLMServer, SimulatedModel\n"
        "s = LLMServer(models={'gpt-4o-mini': SimulatedModel(latency_ms=0, chunk_ms=0), 'gpt-4o': SimulatedModel(latency_ms=0, chunk_ms=0),"
        " 'sim-20ms': SimulatedModel(latency_ms=20, chunk_ms=0)}).start()\n"
        "print(s.openai_url, flush=True)\n"
        "time.sleep(3600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def measure(url: str, calls: int, block: int) -> dict[str, float]:
    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())
    scheduler = Scheduler(workers=2)
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    theirs, ours = OpenAIInstrumentor(), OpenAIShadowInstrumentor()

    def set_mode(mode: str) -> None:
        if theirs.is_instrumented_by_opentelemetry:
            theirs.uninstrument()
        if ours.is_instrumented_by_opentelemetry:
            ours.uninstrument()
        if mode == "theirs":
            theirs.instrument(tracer_provider=provider)
        elif mode == "ours":
            ours.instrument(rules=RULES, tracer_provider=provider, scheduler=scheduler)

    def call() -> float:
        t0 = time.perf_counter_ns()
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return (time.perf_counter_ns() - t0) / 1000

    def first_chunk(model: str = "gpt-4o-mini") -> float:
        t0 = time.perf_counter_ns()
        stream = client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
        next(iter(stream))
        ttft = (time.perf_counter_ns() - t0) / 1000
        for _ in stream:
            pass
        return ttft

    def settle() -> None:
        """Untimed, the same for every mode: let background candidates finish, then a fixed pause
        (only our mode has candidates to wait for; without the pause its next call alone would
        start from an idle CPU)."""
        scheduler.flush(10)
        time.sleep(0.004)

    samples: dict[str, list[float]] = {
        f"{kind}_{mode}": [] for kind in ("call", "ttft", "ttft20") for mode in ("none", "theirs", "ours")
    }
    for mode in ("none", "theirs", "ours"):  # warm-up
        set_mode(mode)
        for _ in range(50):
            call()
            first_chunk()
            scheduler.flush(10)
    for _ in range(max(1, calls // block)):
        for mode in ("none", "theirs", "ours"):
            set_mode(mode)
            call(), first_chunk()  # the first calls after a switch run cold code paths: not counted
            scheduler.flush(10)
            for _ in range(block):
                samples[f"call_{mode}"].append(call())
                settle()
                samples[f"ttft_{mode}"].append(first_chunk())
                settle()
                samples[f"ttft20_{mode}"].append(first_chunk("sim-20ms"))
                settle()
    set_mode("none")
    scheduler.shutdown(2)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    out = {f"{k}_p50_us": v for k, v in med.items()}
    out["added_by_genai_openai_us"] = med["call_theirs"] - med["call_none"]
    out["added_by_otel_shadow_us"] = med["call_ours"] - med["call_none"]
    out["added_ratio_ours_vs_genai_openai"] = out["added_by_otel_shadow_us"] / out["added_by_genai_openai_us"]
    out["ttft_ratio_ours_vs_none"] = med["ttft_ours"] / med["ttft_none"]
    out["ttft_ratio_genai_openai_vs_none"] = med["ttft_theirs"] / med["ttft_none"]
    out["ttft20_ratio_ours_vs_none"] = med["ttft20_ours"] / med["ttft20_none"]
    out["calls_per_case"] = len(samples["call_none"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    proc, url = start_server()
    try:
        result = measure(url, 300 if args.quick else 1500, 5)
    finally:
        proc.kill()
    path = save("instrumentation" + ("-quick" if args.quick else ""), result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
