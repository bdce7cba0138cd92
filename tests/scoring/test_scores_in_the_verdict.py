"""The batch scores in the verdict: the judge's win rate and embedding similarity, read by the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otel_shadow.analysis import build_report
from otel_shadow.scoring import Judge, JudgeConfig, make_embedder, run_scoring
from otel_shadow.store import Store
from otel_shadow.testing import LLMServer


def gates(db: Path) -> dict[str, Any]:
    with Store.open(db, read_only=True) as store:
        (candidate,) = build_report(lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql))).candidates
    return {g.name: g for g in candidate.gates}


def test_the_judges_win_rate_and_the_embedding_similarity_are_gates(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(120, replicate_rate=1.0)
    run_scoring(
        str(db),
        judge=Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url)),
        embedder=make_embedder(llm.openai_url, "sim-embed"),
    )
    found = gates(db)
    win = found["judge_win_rate"]
    assert win.status == "PASS" and win.estimate == 1.0  # the judge prefers the longer answer every time
    assert "120 wins, 0 ties, 0 losses" in win.reason
    similarity = found["semantic_similarity"]
    assert similarity.unit == "difference"  # read against the replicates' similarity, the noise floor
    assert similarity.estimate < 0  # the candidate says more than the primary's own re-run does


def test_without_scores_there_are_no_score_gates(pairs_db: Any) -> None:
    db = pairs_db(20)
    found = gates(db)
    assert "judge_win_rate" not in found and "semantic_similarity" not in found
