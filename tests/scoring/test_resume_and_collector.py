"""Scoring survives a kill, and works while a collector holds the database (scores over OTLP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from otel_shadow.access import open_reader
from otel_shadow.collector import Collector, CollectorConfig
from otel_shadow.scoring import (
    Judge,
    JudgeConfig,
    ScoreOptions,
    make_embedder,
    run_scoring,
)
from otel_shadow.store import Store
from otel_shadow.testing import LLMServer

from .conftest import write_pairs

SCORE_SPANS = "SELECT count(*) FROM spans WHERE name LIKE 'gen_ai.evaluation %'"


def _judge_calls(llm: LLMServer) -> int:
    return sum(1 for r in llm.requests if r["path"] == "/v1/chat/completions")


def test_a_run_killed_midway_resumes_without_rescoring_or_duplicates(llm: LLMServer, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    write_pairs(db, 60)
    llm.set_model("sim-judge", latency_ms=40)
    command = [
        sys.executable,
        "-m",
        "otel_shadow",
        "score",
        "--db",
        str(db),
        "--judge-model",
        "sim-judge",
        "--judge-base-url",
        llm.openai_url,
        "--batch-size",
        "5",
        "--concurrency",
        "2",
        "--bias-check",
        "0",
        "--no-progress",
    ]
    env = {**os.environ, "OPENAI_API_KEY": "test"}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        deadline = time.monotonic() + 60
        while _judge_calls(llm) < 25:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the scoring process made no progress"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # leaving the with closes its pipes and waits
    with Store.open(db, read_only=True) as store:
        kept = store.query("SELECT count(*) FROM shadow_scores").rows[0][0]
        assert store.query(SCORE_SPANS).rows == [(kept,)]
    assert 5 <= kept < 60  # whole batches were written before the kill; the batch in flight was lost

    before = _judge_calls(llm)
    summary = run_scoring(str(db), judge=Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url, bias_check=0.0)))
    assert summary.scored == {"judge": 60 - kept}
    assert _judge_calls(llm) - before == 60 - kept  # only the pairs without a score were judged again
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*), count(DISTINCT candidate_span_id) FROM shadow_scores").rows == [(60, 60)]
        assert store.query(SCORE_SPANS).rows == [(60,)]


class CollectorProcess:
    """``otel-shadow collector`` in its own process (DuckDB: one process holds the file)."""

    def __init__(self, db: Path, *extra: str) -> None:
        command = [
            sys.executable,
            "-m",
            "otel_shadow",
            "collector",
            "--db",
            str(db),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--decode-workers",
            "0",
            *extra,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        info = Path(f"{db}.collector.json")
        deadline = time.monotonic() + 30
        while not info.exists():
            assert self.process.poll() is None, self.process.communicate()
            assert time.monotonic() < deadline, "the collector did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=20)  # waits, and closes the stderr pipe


def test_scoring_while_a_collector_holds_the_database_goes_through_it(llm: LLMServer, tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    backend_db = tmp_path / "backend.duckdb"
    write_pairs(db, 6, replicate_rate=1.0)
    holder = CollectorProcess(db)
    backend = Collector(CollectorConfig(db=str(backend_db), grpc_port=0, http_port=0, stats_interval_s=3600))
    backend.start()
    try:
        judge = Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url))
        embedder = make_embedder(llm.openai_url, "sim-embed")
        options = ScoreOptions(otlp_endpoint=f"127.0.0.1:{backend.grpc.port}", otlp_insecure=True)  # type: ignore[union-attr]
        summary = run_scoring(str(db), judge=judge, embedder=embedder, options=options)
        assert summary.where.startswith("the collector at 127.0.0.1:")
        assert summary.scored == {"semantic_similarity": 12, "judge": 12}
        reader = open_reader(str(db))  # the collector's /v1/sql: the scores are committed there
        rows = reader.query("SELECT scorer, candidate_role, count(*) FROM shadow_scores GROUP BY ALL ORDER BY ALL").rows
        assert rows == [
            ("judge", "candidate", 6),
            ("judge", "replicate", 6),
            ("semantic_similarity", "candidate", 6),
            ("semantic_similarity", "replicate", 6),
        ]
        again = run_scoring(str(db), judge=judge, embedder=embedder)
        assert again.to_score == 0 and again.scored == {}
    finally:
        holder.stop()
        backend.stop(2)
    # the user's own backend received the same scores as GenAI evaluation spans
    with Store.open(backend_db, read_only=True) as store:
        sent = store.query(
            "SELECT count(*) FROM spans WHERE attributes ->> '$.\"gen_ai.evaluation.name\"' IS NOT NULL"
        ).rows
    assert sent == [(24,)]


def test_small_result_limits_of_the_collector_are_read_in_smaller_pages(llm: LLMServer, tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    write_pairs(db, 20)
    holder = CollectorProcess(db, "--sql-max-result-bytes", "3000")
    try:
        summary = run_scoring(
            str(db), embedder=make_embedder(llm.openai_url, "sim-embed"), options=ScoreOptions(page_size=128)
        )
        assert summary.scored == {"semantic_similarity": 20}
    finally:
        holder.stop()
