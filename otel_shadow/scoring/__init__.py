"""Batch scoring of captured content: embedding similarity and a pairwise LLM judge.

``otel-shadow score`` reads the pairs whose content was captured (``Shadow(capture_content=True)``,
or the GenAI content capture of zero-code instrumentation), scores those not yet scored, and
writes each score as a span (``gen_ai.evaluation <scorer>``) through the store's one ingest path;
the views ``shadow_scores`` and ``shadow_score_summary`` read them. See docs/scoring.md.

This package may import the store and the CLI's access to it; core and instrumentation never import it.
"""

from .embeddings import Embedder, EndpointEmbedder, LocalEmbedder, make_embedder
from .judge import Judge, JudgeConfig, JudgeError, load_rubric, parse_verdict
from .runner import SIMILARITY, ScoreOptions, ScoreSummary, run_scoring

__all__ = [
    "SIMILARITY",
    "Embedder",
    "EndpointEmbedder",
    "Judge",
    "JudgeConfig",
    "JudgeError",
    "LocalEmbedder",
    "ScoreOptions",
    "ScoreSummary",
    "load_rubric",
    "make_embedder",
    "parse_verdict",
    "run_scoring",
]
