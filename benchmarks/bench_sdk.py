"""Caller overhead of an experiment vs a bare OpenTelemetry span, and isolation from bad candidates.

Issue 2's bars, each a ratio against a baseline measured in the same run:
  * sampled call with one candidate: p50 ≤ 1.25×, p99 ≤ 2× the bare span;  unsampled ≤ 1.1×
    (issue 12: the sampled call's bare span has the four attributes a user would set by hand;
    ``bare_span_same_attrs``, the span with every attribute our primary ends with, is kept for
    comparison with earlier figures; the unsampled call's baseline carries its own attributes)
  * candidates 10× slower than the primary, raising, or hanging: primary p99 ≤ 1.1× of no candidates
  * RSS flat over 100k calls with misbehaving candidates

Run: python benchmarks/bench_sdk.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from _harness import interleaved, paired_ratio, pct, rss_mib, save
from opentelemetry import context, trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow import Config, Scheduler, Shadow


class NullProcessor(SpanProcessor):
    """Receives every span (so the SDK does its full work) and drops it."""


def overhead(calls: int, pause_s: float = 0.0) -> dict[str, float]:
    provider = TracerProvider()
    provider.add_span_processor(NullProcessor())
    tracer = provider.get_tracer("bench")
    configs = [{"model": "gpt-4", "temperature": 0.5}, {"model": "gpt-5-beta", "temperature": 0.5}]
    scheduler = Scheduler(workers=2, max_pending=10_000)

    def body(prompt: str, model: str) -> str:
        return f"{model}: {prompt}"

    sampled = Shadow(configs, tracer_provider=provider, scheduler=scheduler, sample_rate=1.0)
    unsampled = Shadow(configs, tracer_provider=provider, scheduler=scheduler, sample_rate=0.0)

    @sampled.experiment(name="bench")
    def shadowed(prompt: str, config: Config) -> str:
        return body(prompt, config["model"])

    @unsampled.experiment(name="bench")
    def shadowed_unsampled(prompt: str, config: Config) -> str:
        return body(prompt, config["model"])

    # Issue 12's baseline: the four attributes a user would set by hand, at the span's start.
    # Issue 2's (and earlier figures'): exactly the attributes our primary span ends with.
    attrs4 = {"app.model": "gpt-4", "app.temperature": 0.5, "app.outcome": "ok", "app.output.length": 12}
    recorder = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    shadowed("hi")
    shadowed_unsampled("hi")
    scheduler.flush(5)
    ends = [s for s in recorder.get_finished_spans() if s.attributes["shadow.role"] == "primary"]
    sampled_attrs, unsampled_attrs = (dict(s.attributes) for s in ends)
    recorder.shutdown()
    provider._active_span_processor._span_processors = provider._active_span_processor._span_processors[:1]

    def baseline() -> str:
        with tracer.start_as_current_span("bench", attributes=attrs4):
            return body("hi", "gpt-4")

    def baseline_same_attrs() -> str:
        with tracer.start_as_current_span("bench", attributes=sampled_attrs):
            return body("hi", "gpt-4")

    def baseline_unsampled() -> str:
        with tracer.start_as_current_span("bench", attributes=unsampled_attrs):
            return body("hi", "gpt-4")

    def plain() -> str:
        return body("hi", "gpt-4")

    cases = {
        "plain": plain,
        "bare_span": baseline,
        "bare_span_same_attrs": baseline_same_attrs,
        "bare_span_u": baseline_unsampled,
        "sampled": lambda: shadowed("hi"),
        "unsampled": lambda: shadowed_unsampled("hi"),
    }
    # every call inside a request span, as in a service (the request span is not timed)
    request = tracer.start_span("request")
    token = context.attach(trace.set_span_in_context(request))
    try:
        # a sampled block's candidates finish before the next case's block starts (each case pays
        # for its own background work, not for the previous case's)
        res = interleaved(cases, calls, pause_s=pause_s, between=lambda: scheduler.flush(30))
    finally:
        context.detach(token)
        request.end()
    scheduler.flush(30)
    out = {f"{k}_p50_us": pct(v, 50) for k, v in res.items()}
    out.update({f"{k}_p99_us": pct(v, 99) for k, v in res.items()})
    base50, base99 = out["bare_span_p50_us"], out["bare_span_p99_us"]
    out["sampled_p50_ratio"] = out["sampled_p50_us"] / base50
    out["sampled_p99_ratio"] = out["sampled_p99_us"] / base99
    out["sampled_p50_ratio_same_attrs"] = out["sampled_p50_us"] / out["bare_span_same_attrs_p50_us"]
    out["unsampled_p50_ratio"] = out["unsampled_p50_us"] / out["bare_span_u_p50_us"]
    out["unsampled_p99_ratio"] = out["unsampled_p99_us"] / out["bare_span_u_p99_us"]
    # the same p50 ratios taken round by round (drift-free; see _harness.paired_ratio)
    out["sampled_p50_ratio_paired"] = paired_ratio(res, "sampled", "bare_span", 500)
    out["sampled_p50_ratio_same_attrs_paired"] = paired_ratio(res, "sampled", "bare_span_same_attrs", 500)
    out["unsampled_p50_ratio_paired"] = paired_ratio(res, "unsampled", "bare_span_u", 500)
    scheduler.shutdown(1)
    return out


def isolation(calls: int) -> dict[str, float]:
    """Primary = 1 ms simulated I/O; candidates 10× slower, raising, or hanging."""
    provider = TracerProvider()
    provider.add_span_processor(NullProcessor())
    primary_s = 0.001
    release = threading.Event()
    out: dict[str, float] = {}

    def make(kind: str):
        scheduler = Scheduler(workers=4, max_pending=256)
        configs = [{"model": "primary"}] + ([{"model": kind}] if not kind.startswith("none") else [])
        shadow = Shadow(configs, tracer_provider=provider, scheduler=scheduler, timeout=0.5)

        @shadow.experiment(name=f"iso-{kind}")
        def call(config: Config) -> str:
            model = config["model"]
            if model == "primary":
                time.sleep(primary_s)
            elif model == "slow":
                time.sleep(10 * primary_s)
            elif model == "raising":
                time.sleep(primary_s)
                raise RuntimeError("candidate failed")
            elif model == "hanging":
                release.wait(60)
            return model

        return call, scheduler

    # "none_again" is a second run without candidates: its ratio to "none" is this run's noise floor
    cases = {kind: make(kind) for kind in ("none", "slow", "raising", "hanging", "none_again")}

    def settle() -> None:  # untimed: a kind's leftover candidates (a slow backlog, hung ones timing
        for _, scheduler in cases.values():  # out) must not land in the next kind's block
            scheduler.flush(5)

    res = interleaved({k: v[0] for k, v in cases.items()}, calls, block=500, warmup=50, between=settle)
    release.set()
    for kind, values in res.items():
        out[f"{kind}_p50_us"] = pct(values, 50)
        out[f"{kind}_p99_us"] = pct(values, 99)
    for kind in ("slow", "raising", "hanging", "none_again"):
        out[f"{kind}_p99_ratio"] = out[f"{kind}_p99_us"] / out["none_p99_us"]
        out[f"{kind}_p50_ratio"] = out[f"{kind}_p50_us"] / out["none_p50_us"]
        # round by round (each kind's block against the no-candidate block of the same round)
        out[f"{kind}_p99_ratio_paired"] = paired_ratio(res, kind, "none", 500, q=99)
    for _, scheduler in cases.values():
        scheduler.shutdown(1)
    return out


def memory(calls: int) -> dict[str, float]:
    """RSS over many calls whose candidates are slow, raising or hanging (the queue saturates)."""
    provider = TracerProvider()
    provider.add_span_processor(NullProcessor())
    release = threading.Event()
    scheduler = Scheduler(workers=4, max_pending=256)
    shadow = Shadow(
        [{"model": "p"}, {"model": "slow"}, {"model": "raising"}, {"model": "hanging"}],
        tracer_provider=provider,
        scheduler=scheduler,
        timeout=0.05,
    )

    @shadow.experiment(name="rss")
    def call(prompt: str, config: Config) -> str:
        if config["model"] == "slow":
            time.sleep(0.001)
        elif config["model"] == "raising":
            raise ValueError("x" * 100)
        elif config["model"] == "hanging":
            release.wait(0.2)
        return prompt * 10

    marks = {}
    for i in range(1, calls + 1):
        call(f"prompt {i}")
        if i in (calls // 10, calls):
            marks[i] = rss_mib()
    release.set()
    scheduler.flush(10)
    first, last = marks[calls // 10], marks[calls]
    drops, runs = shadow.telemetry.tallies()
    scheduler.shutdown(1)
    return {
        "calls": calls,
        "rss_mib_at_10pct": first,
        "rss_mib_at_end": last,
        "rss_growth_mib": last - first,
        "candidates_run": sum(runs.values()),
        "candidates_dropped": sum(drops.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer calls (CI smoke run)")
    args = parser.parse_args()
    n = 5_000 if args.quick else 40_000
    result = {
        "overhead_back_to_back": overhead(n),
        "overhead_paced_1ms": overhead(n // 5, pause_s=0.001),
        "isolation": isolation(1_000 if args.quick else 6_000),
        "memory": memory(10_000 if args.quick else 100_000),
    }
    path = save("sdk" + ("-quick" if args.quick else ""), result)
    for section, values in result.items():
        print(f"## {section}")
        for key, value in values.items():
            print(f"  {key:28s} {value:10.3f}" if isinstance(value, float) else f"  {key:28s} {value}")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
