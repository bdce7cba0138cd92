"""Scores as spans, and where they go: the store (in-process exporter, or OTLP to the collector
that holds it) and, optionally, the user's own OTLP backend.

A score is one span per pair and scorer, named ``gen_ai.evaluation <scorer>``, in the pair's trace,
a child of the candidate span, with a link to the primary. It carries the GenAI evaluation
attributes (``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``, ``.explanation``) and a
``gen_ai.evaluation.result`` event with the same, as the semantic conventions describe it, so any
backend shows it; ``shadow.score.*`` attributes say which scorer config, model and pair. Its span
id is a hash of (pair, scorer config): a span sent twice is the same span, stored once by the views.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from .. import attributes as A
from .._version import __version__
from ..errors import StoreError
from .pairs import Pair

__all__ = ["Score", "Sink", "collector_otlp_endpoint", "score_span"]

logger = logging.getLogger("otel_shadow.scoring")

_RESOURCE = Resource.create({A.SERVICE_NAME: "otel-shadow-score"})
_SCOPE = InstrumentationScope("otel_shadow.scoring", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@dataclass
class Score:
    """One scorer's result on one pair."""

    scorer: str  # gen_ai.evaluation.name
    scorer_id: str
    model: str
    config: dict[str, Any]
    value: float
    started_ns: int
    ended_ns: int
    label: str | None = None
    explanation: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _span_id(pair: Pair, scorer_id: str) -> int:
    digest = hashlib.blake2b(f"{pair.trace_id}|{pair.candidate_span_id}|{scorer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def score_span(pair: Pair, score: Score) -> ReadableSpan:
    trace_id = int(pair.trace_id, 16)
    evaluation: dict[str, Any] = {
        A.GEN_AI_EVALUATION_NAME: score.scorer,
        A.GEN_AI_EVALUATION_SCORE_VALUE: float(score.value),
    }
    if score.label is not None:
        evaluation[A.GEN_AI_EVALUATION_SCORE_LABEL] = score.label
    if score.explanation:
        evaluation[A.GEN_AI_EVALUATION_EXPLANATION] = score.explanation
    attributes: dict[str, Any] = {
        **evaluation,
        A.SHADOW_SCORE_SCORER_ID: score.scorer_id,
        A.SHADOW_SCORE_SCORER_CONFIG: json.dumps(score.config, sort_keys=True),
        A.SHADOW_SCORE_MODEL: score.model,
        A.SHADOW_SCORE_EXPERIMENT: pair.experiment,
        A.SHADOW_SCORE_PRIMARY_CONFIG_ID: pair.primary_config_id,
        A.SHADOW_SCORE_CANDIDATE_CONFIG_ID: pair.candidate_config_id,
        A.SHADOW_SCORE_CANDIDATE_ROLE: pair.candidate_role,
        A.SHADOW_SCORE_PAIR_START: pair.start_ns,
        A.SHADOW_SCORE_INPUT_TOKENS: score.input_tokens,
        A.SHADOW_SCORE_OUTPUT_TOKENS: score.output_tokens,
        **{k: v for k, v in score.extra.items() if v is not None},
    }
    return ReadableSpan(
        name=f"gen_ai.evaluation {score.scorer}",
        context=SpanContext(trace_id, _span_id(pair, score.scorer_id), is_remote=False, trace_flags=_SAMPLED),
        parent=SpanContext(trace_id, pair.candidate_span_id, is_remote=True, trace_flags=_SAMPLED),
        resource=_RESOURCE,
        attributes=attributes,
        events=[Event(A.GEN_AI_EVALUATION_RESULT, evaluation, timestamp=score.ended_ns)],
        links=[
            Link(
                SpanContext(trace_id, pair.primary_span_id, is_remote=True, trace_flags=_SAMPLED),
                {A.SHADOW_LINK: A.LINK_SCORED_PRIMARY},
            )
        ],
        kind=SpanKind.INTERNAL,
        instrumentation_scope=_SCOPE,
        start_time=score.started_ns,
        end_time=max(score.ended_ns, score.started_ns),
    )


def collector_otlp_endpoint(sql_url: str, grpc_port: int) -> tuple[str, bool]:
    """The collector's OTLP/gRPC address from its info file: the SQL endpoint's host, its gRPC port."""
    parts = urlsplit(sql_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{int(grpc_port)}", parts.scheme != "https"


def otlp_exporter(endpoint: str, *, insecure: bool | None = None, token: str | None = None) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    headers = {"authorization": f"Bearer {token}"} if token else None
    return OTLPSpanExporter(endpoint=endpoint, insecure=insecure, headers=headers, timeout=30)


class Sink:
    """Exports a batch of score spans to the store's writer and to the user's backend, if any; a
    batch the store did not take is an error (the run stops; what was exported before stays)."""

    def __init__(
        self, store_exporter: SpanExporter, where: str, extra: SpanExporter | None = None, extra_where: str = ""
    ) -> None:
        self.store_exporter = store_exporter
        self.where = where
        self.extra = extra
        self.extra_where = extra_where
        self.exported = 0
        self.extra_failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> None:
        if not spans:
            return
        if self.store_exporter.export(spans) is not SpanExportResult.SUCCESS:
            raise StoreError(
                f"{self.where} did not take {len(spans)} scores (see the log above); nothing else was "
                "lost: scores already written stay, and a new run scores the rest"
            )
        self.exported += len(spans)
        if self.extra is not None and self.extra.export(spans) is not SpanExportResult.SUCCESS:
            self.extra_failed += len(spans)
            logger.warning("otel-shadow score: %s did not take %d scores", self.extra_where, len(spans))

    def close(self) -> None:
        for exporter in (self.store_exporter, self.extra):
            if exporter is not None:
                try:
                    exporter.shutdown()
                except Exception:
                    logger.debug("otel-shadow score: closing an exporter failed", exc_info=True)
