"""``otel-shadow score --segments DIR``: pairs read from Parquet segments (the same SQL as a DuckDB
file, over the segment views), scores sent over OTLP to a collector that writes into the same
folder, where ``shadow_scores`` finds them; without ``--otlp-endpoint`` the run is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_shadow.cli import main
from otel_shadow.collector import Collector, CollectorConfig
from otel_shadow.errors import ConfigError
from otel_shadow.scoring import Judge, JudgeConfig, ScoreOptions, make_embedder, run_scoring
from otel_shadow.store import Store
from otel_shadow.store.segments import SegmentWriter, open_segments
from otel_shadow.testing import LLMServer

from .conftest import write_pairs


def _segments_with_pairs(tmp_path: Path, n: int) -> Path:
    """``n`` pairs (each with a replicate) written by the real SDK, closed into a segment."""
    db, folder = tmp_path / "app.duckdb", tmp_path / "segments"
    write_pairs(db, n, replicate_rate=1.0)
    with Store.open(db) as store:
        assert SegmentWriter(store, folder, collector_id="app").close_segment() is not None
    return folder


def _judge_calls(llm: LLMServer) -> int:
    return sum(1 for r in llm.requests if r["path"] == "/v1/chat/completions")


def test_scores_of_segments_go_over_otlp_into_the_segments_and_a_second_run_scores_nothing(
    llm: LLMServer, tmp_path: Path
) -> None:
    folder = _segments_with_pairs(tmp_path, 5)
    config = CollectorConfig(
        db=str(tmp_path / "scores.duckdb"),
        grpc_port=0,
        http_port=0,
        stats_interval_s=3600,
        segments=str(folder),
        segment_seconds=3600,
        collector_id="scores",
    )
    collector = Collector(config)
    collector.start()
    judge = Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url))
    embedder = make_embedder(llm.openai_url, "sim-embed")
    try:
        endpoint = f"127.0.0.1:{collector.grpc.port}"  # type: ignore[union-attr]
        options = ScoreOptions(otlp_endpoint=endpoint, otlp_insecure=True)
        summary = run_scoring("", judge=judge, embedder=embedder, options=options, segments=str(folder))
        assert summary.where == f"the OTLP endpoint {endpoint}"
        assert summary.to_score == 10 and summary.scored == {"semantic_similarity": 10, "judge": 10}
    finally:
        collector.stop(5)  # its last segment holds what it committed
    with open_segments(folder) as store:
        scores = store.query(
            "SELECT s.scorer, s.candidate_role, count(*) FROM shadow_scores s JOIN shadow_pairs p "
            "ON p.trace_id = s.trace_id AND p.candidate_span_id = s.candidate_span_id "
            "AND p.primary_span_id = s.primary_span_id GROUP BY ALL ORDER BY ALL"
        ).rows
    assert scores == [
        ("judge", "candidate", 5),
        ("judge", "replicate", 5),
        ("semantic_similarity", "candidate", 5),
        ("semantic_similarity", "replicate", 5),
    ]
    before = _judge_calls(llm)
    again = run_scoring(
        "",
        judge=judge,
        embedder=embedder,
        segments=str(folder),
        options=ScoreOptions(otlp_endpoint="127.0.0.1:9", otlp_insecure=True),  # nothing is sent
    )
    assert again.to_score == 0 and again.scored == {} and again.exported == 0
    assert _judge_calls(llm) == before


def test_scoring_segments_without_an_otlp_endpoint_is_refused_naming_the_fix(
    llm: LLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _segments_with_pairs(tmp_path, 2)
    judge = Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url))
    with pytest.raises(ConfigError, match="--otlp-endpoint of an otel-shadow collector that writes segments"):
        run_scoring("", judge=judge, segments=str(folder))
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--segments", str(folder), "--judge-model", "sim-judge", "--judge-base-url", llm.openai_url])
    assert exit_info.value.code == 2 and "give --otlp-endpoint" in capsys.readouterr().err
    assert _judge_calls(llm) == 0  # refused before anything was scored
