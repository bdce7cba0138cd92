"""Shadow traffic made through the real OpenTelemetry SDK, with chosen latencies and outcomes.

Each request is a primary span (with a GenAI child span holding its tokens), a candidate span per
candidate config and, for every fourth request, a replicate (the primary config again), each linked
to its primary with ``shadow.link = primary`` and carrying comparison metrics (``shadow.metric.*``),
as the SDK's Shadow emits them. Timestamps are explicit, so the same seed gives the same spans.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode
from opentelemetry.util.types import AttributeValue

# candidate config -> (latency factor, error one in N, differs one in N)
CANDIDATES = {"C-same": (1.0, 0, 0), "C-slow": (1.8, 0, 0), "C-flaky": (1.0, 6, 3)}
ROUTES = ("/chat", "/search")
START_NS = 1_700_000_000_000_000_000


def simulate(requests: int, seed: int = 7) -> list[ReadableSpan]:
    """The finished spans of ``requests`` shadowed requests."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shadowed-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otel_shadow.tests", "1.0")
    rng = np.random.default_rng(seed)
    for i in range(requests):
        t0 = START_NS + i * 50_000_000
        request_factor = float(np.exp(rng.normal(0.0, 0.4)))
        primary_ms = 400.0 * request_factor * float(np.exp(rng.normal(0.0, 0.2)))
        route = ROUTES[i % 2]
        primary = tracer.start_span(
            "generate",
            start_time=t0,
            attributes={
                "shadow.experiment": "generate",
                "shadow.role": "primary",
                "shadow.config.id": "P",
                "shadow.config.model": "gpt-4o",
                "shadow.outcome": "ok",
                "shadow.output.hash": f"h{i % 5}",
                "shadow.output.length": 100 + i % 7,
                "shadow.candidates.scheduled": len(CANDIDATES),
                "shadow.candidates.dropped": 1 if i % 10 == 0 else 0,
                **(
                    {"shadow.candidates.drop_reasons": "queue_full,expired" if i % 20 == 0 else "queue_full"}
                    if i % 10 == 0
                    else {}
                ),  # why the candidate was dropped; 'expired' (the experiment ended) on every second one
                "http.route": route,
            },
        )
        parent = trace.set_span_in_context(primary)
        child = tracer.start_span(
            "chat gpt-4o",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            start_time=t0 + 1_000,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 30 + i % 11,
                "gen_ai.usage.output_tokens": 120 + i % 13,
            },
        )
        child.end(end_time=t0 + int(primary_ms * 1e6) - 1_000)
        primary.end(end_time=t0 + int(primary_ms * 1e6))
        link = Link(primary.get_span_context(), {"shadow.link": "primary"})
        arms = [(name, "candidate", *params) for name, params in CANDIDATES.items()]
        if i % 4 == 0:
            arms.append(("P", "replicate", 1.0, 0, 8))  # half of the replicates differ
        for config, role, factor, error_every, differ_every in arms:
            ms = primary_ms * factor * float(np.exp(rng.normal(0.0, 0.05)))
            failed = bool(error_every) and i % error_every == 1
            differs = bool(differ_every) and i % differ_every == 0
            begin = t0 + int(primary_ms * 1e6) + 2_000_000
            attributes: dict[str, AttributeValue] = {
                "shadow.experiment": "generate",
                "shadow.role": role,
                "shadow.config.id": config,
                "shadow.output.length": 90 + i % 5,
                "gen_ai.request.model": "gpt-4o" if role == "replicate" else f"model-{config}",
                "gen_ai.usage.input_tokens": 30 + i % 11,
                "gen_ai.usage.output_tokens": 100 + (i * 7) % 40,
            }
            if (failed and i % 12 == 1) or i % 50 == 5:
                pass  # no shadow.outcome: the views read the outcome from the span status
            elif i % 97 == 3 and role == "candidate":
                attributes["shadow.outcome"] = "cancelled"
            else:
                attributes["shadow.outcome"] = "error" if failed else "ok"
            if not failed:
                attributes["shadow.output.hash"] = f"x{i}" if differs else f"h{i % 5}"
                attributes["shadow.metric.similarity"] = 0.6 if differs else float(0.9 + 0.1 * rng.random())
                attributes["shadow.metric.exact_match"] = not differs
            span = tracer.start_span("generate", context=parent, links=[link], start_time=begin, attributes=attributes)
            if failed:
                span.set_status(Status(StatusCode.ERROR, "503 Service Unavailable"))
            span.end(end_time=begin + int(ms * 1e6))
    provider.shutdown()
    return list(memory.get_finished_spans())


def with_scores(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """The spans, plus the score spans ``otel-shadow score`` writes (its own ``score_span``): a judge
    and an embedding similarity on every ok pair, scored twice for some (the first score counts)."""
    from otel_shadow.scoring.emit import Score, score_span
    from otel_shadow.scoring.pairs import Pair

    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    scores = []
    for number, span in enumerate(spans):
        attributes = span.attributes or {}
        link = span.links[0] if span.links else None
        primary = by_id.get(link.context.span_id) if link is not None else None
        if primary is None or span.context is None or attributes.get("shadow.outcome") != "ok":
            continue
        pair = Pair(
            experiment=str(attributes["shadow.experiment"]), trace_id=f"{span.context.trace_id:032x}",
            primary_span_id=primary.context.span_id if primary.context else 0, candidate_span_id=span.context.span_id,
            primary_config_id="P", candidate_config_id=str(attributes["shadow.config.id"]),
            candidate_role=str(attributes["shadow.role"]), start_ns=primary.start_time or 0,
            request=None, primary_output=None, candidate_output=None, done=frozenset(),
        )  # fmt: skip
        ended = (span.end_time or 0) + 60_000_000_000
        config = attributes["shadow.config.id"]
        label = {"C-same": ("win", "tie")[number % 2], "C-slow": "loss"}.get(
            str(config), ("win", "tie", "loss")[number % 3]
        )
        judge = Score("judge", "judge-1", "judge-model", {"rubric": "helpful"}, {"win": 1.0, "tie": 0.5, "loss": 0.0}[label],
                      ended, ended + 1_000_000, label=label, explanation=f"because {number}", input_tokens=300,
                      output_tokens=20, extra={"shadow.score.judge.consistent": number % 4 != 0})  # fmt: skip
        similar = Score("semantic_similarity", "embed-1", "minilm", {"model": "minilm"}, 0.9 + (number % 10) / 100,
                        ended, ended + 2_000_000)  # fmt: skip
        scores += [score_span(pair, judge), score_span(pair, similar)]
        if number % 7 == 0:  # scored again later, with another value: the first score is kept
            again = Score("semantic_similarity", "embed-1", "minilm", {"model": "minilm"}, 0.1, ended + 9_000_000,
                          ended + 9_500_000)  # fmt: skip
            scores.append(score_span(pair, again))
    return [*spans, *scores]


def with_resent_copies(spans: Sequence[ReadableSpan], every: int = 9) -> list[ReadableSpan]:
    """The spans, plus a second copy of every ``every``-th one (a client that re-sent a batch)."""
    return [*spans, *spans[::every]]
