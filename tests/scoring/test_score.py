"""`otel-shadow score` end to end: real pairs in a real DuckDB file, the real openai/anthropic
clients against the local model server (sim-judge, sim-judge-first, sim-embed), scores written by
the real exporter and read back through the views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.cli import main
from otel_shadow.pricing import Price, PriceTable
from otel_shadow.scoring import (
    Judge,
    JudgeConfig,
    JudgeError,
    ScoreOptions,
    make_embedder,
    run_scoring,
)
from otel_shadow.store import Store
from otel_shadow.testing import LLMServer

from .conftest import write_pairs


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with Store.open(db, read_only=True) as store:
        return store.query(sql).rows


def _judge(llm: LLMServer, model: str = "sim-judge", **kwargs: Any) -> Judge:
    return Judge(JudgeConfig(model=model, base_url=llm.openai_url, **kwargs))


def _judge_requests(llm: LLMServer) -> int:
    return sum(1 for r in llm.requests if r["path"] == "/v1/chat/completions")


def test_judge_verdicts_land_in_the_views_from_the_candidates_side(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(10, replicate_rate=1.0)
    summary = run_scoring(str(db), judge=_judge(llm), options=ScoreOptions(batch_size=3))
    assert summary.scored == {"judge": 20}
    # the candidate ('long') has more words: sim-judge prefers it in either position; a replicate ties
    rows = _rows(db, "SELECT candidate_role, label, score, count(*) FROM shadow_scores GROUP BY ALL ORDER BY 1")
    assert rows == [("candidate", "win", 1.0, 10), ("replicate", "tie", 0.5, 10)]
    summary_row = _rows(
        db,
        "SELECT pairs, wins, ties, losses, win_rate, replicate_mean FROM shadow_score_summary WHERE scorer = 'judge'",
    )
    assert summary_row == [(10, 10, 0, 0, 1.0, 0.5)]


def test_a_score_span_is_a_child_of_the_candidate_linked_to_its_primary(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(3)
    run_scoring(str(db), judge=_judge(llm))
    joined = _rows(
        db,
        """
        SELECT count(*) FROM shadow_scores s
        JOIN shadow_pairs p ON p.trace_id = s.trace_id AND p.candidate_span_id = s.candidate_span_id
         AND p.primary_span_id = s.primary_span_id AND p.candidate_config_id = s.candidate_config_id
         AND p.start_time = s.start_time""",
    )
    assert joined == [(3,)]
    spans = _rows(
        db,
        """SELECT name, attributes ->> '$."gen_ai.evaluation.name"', attributes ->> '$."gen_ai.evaluation.score.label"'
                         FROM spans WHERE name LIKE 'gen_ai.evaluation%'""",
    )
    assert spans == [("gen_ai.evaluation judge", "judge", "win")] * 3
    events = _rows(db, "SELECT name, attributes ->> '$.\"gen_ai.evaluation.score.value\"' FROM span_events")
    assert events == [("gen_ai.evaluation.result", "1.0")] * 3
    # scores are not executions: the runs and pairs views do not see them
    assert _rows(db, "SELECT count(*) FROM shadow_runs") == [(6,)]


def test_the_judge_is_blind_and_sees_each_order_about_half_the_time(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(40)
    run_scoring(str(db), judge=_judge(llm, seed=3, bias_check=0.0))
    prompts = [r["messages"][1]["content"] for r in llm.requests if r["path"] == "/v1/chat/completions"]
    assert len(prompts) == 40
    assert not any("primary" in p.lower() or "candidate" in p.lower() for p in prompts)
    orders = _rows(
        db,
        "SELECT attributes ->> '$.\"shadow.score.judge.order\"', count(*) FROM spans WHERE name LIKE 'gen_ai.evaluation%' GROUP BY 1",
    )
    counts = dict(orders)
    assert set(counts) == {"primary_first", "candidate_first"} and min(counts.values()) >= 10
    assert _rows(db, "SELECT DISTINCT label FROM shadow_scores") == [("win",)]


def test_the_bias_check_agrees_for_a_fair_judge_and_never_for_a_position_biased_one(
    llm: LLMServer, tmp_path: Path
) -> None:
    fair_db, biased_db = tmp_path / "fair.duckdb", tmp_path / "biased.duckdb"
    write_pairs(fair_db, 20)
    write_pairs(biased_db, 20)
    fair = run_scoring(str(fair_db), judge=_judge(llm, bias_check=1.0))
    biased = run_scoring(str(biased_db), judge=_judge(llm, "sim-judge-first", bias_check=1.0))
    assert (fair.bias_checked, fair.bias_agreed) == (20, 20)
    assert (biased.bias_checked, biased.bias_agreed) == (20, 0)
    # a verdict that follows the order is no verdict: those pairs count as ties
    assert _rows(biased_db, "SELECT bias_checked, bias_agreement, ties, mean_score FROM shadow_score_summary") == [
        (20, 0.0, 20, 0.5)
    ]
    assert _rows(fair_db, "SELECT bias_checked, bias_agreement, wins FROM shadow_score_summary") == [(20, 1.0, 20)]


def test_a_second_run_scores_nothing_and_asks_the_judge_nothing(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(8)
    first = run_scoring(str(db), judge=_judge(llm), embedder=make_embedder(llm.openai_url, "sim-embed"))
    calls = len(llm.requests)
    second = run_scoring(str(db), judge=_judge(llm), embedder=make_embedder(llm.openai_url, "sim-embed"))
    assert first.scored == {"semantic_similarity": 8, "judge": 8}
    assert (second.to_score, second.scored, len(llm.requests)) == (0, {}, calls)
    # a new pair since: only it is scored
    write_pairs(db, 1, start=100)
    third = run_scoring(str(db), judge=_judge(llm), embedder=make_embedder(llm.openai_url, "sim-embed"))
    assert third.scored == {"semantic_similarity": 1, "judge": 1}
    assert _rows(db, "SELECT scorer, count(*) FROM shadow_scores GROUP BY 1 ORDER BY 1") == [
        ("judge", 9),
        ("semantic_similarity", 9),
    ]


def test_another_judge_config_is_another_scorer_with_its_own_scores(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(4)
    run_scoring(str(db), judge=_judge(llm))
    again = run_scoring(str(db), judge=_judge(llm, rubric="Prefer the shorter answer."))
    assert again.scored == {"judge": 4}
    assert _rows(db, "SELECT count(DISTINCT scorer_id), count(*) FROM shadow_scores") == [(2, 8)]


def test_embedding_similarity_is_one_for_identical_outputs_and_lower_for_different_ones(
    llm: LLMServer, pairs_db: Any
) -> None:
    db = pairs_db(6, replicate_rate=1.0)
    run_scoring(str(db), embedder=make_embedder(llm.openai_url, "sim-embed"))
    rows = _rows(db, "SELECT candidate_role, min(score), max(score) FROM shadow_scores GROUP BY 1 ORDER BY 1")
    assert rows[1][0] == "replicate" and rows[1][1] == pytest.approx(1.0)
    assert rows[0][0] == "candidate" and 0.3 < rows[0][1] <= rows[0][2] < 0.95
    floor = _rows(db, "SELECT replicate_mean, difference_from_floor < 0 FROM shadow_score_summary")
    assert floor[0][0] == pytest.approx(1.0) and floor[0][1] is True


def test_pairs_without_captured_content_are_skipped_and_counted(
    llm: LLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.duckdb"
    write_pairs(db, 5, capture=False)
    write_pairs(db, 2, capture=True, start=50)
    main(["score", "--db", str(db), "--judge-model", "sim-judge", "--judge-base-url", llm.openai_url, "--no-progress"])
    out = capsys.readouterr().out
    assert "5 pairs have no captured content; enable capture to score them" in out
    assert _rows(db, "SELECT count(*) FROM shadow_scores") == [(2,)]


def test_the_budget_stops_the_run_cleanly_and_a_later_run_finishes(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(30)
    judge = _judge(llm, bias_check=0.0)
    one_call = judge.estimate(_first_pair(db, judge))
    summary = run_scoring(str(db), judge=judge, options=ScoreOptions(budget_tokens=one_call * 5, concurrency=2))
    assert summary.stopped == "budget"
    scored = summary.scored["judge"]
    assert 1 <= scored < 30 and summary.tokens_spent <= one_call * 5
    assert _rows(db, "SELECT count(*) FROM shadow_scores") == [(scored,)]
    rest = run_scoring(str(db), judge=judge)
    assert rest.stopped is None and rest.scored == {"judge": 30 - scored}


def test_the_judges_dollar_budget_stops_the_run_cleanly_and_a_later_run_finishes(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(30)
    judge = _judge(llm, bias_check=0.0)
    prices = PriceTable({"sim-judge": Price(input=1000.0, output=4000.0)})  # USD per 1M tokens
    prompt, answer = judge.estimate_split(_first_pair(db, judge))
    one_call = (prompt * 1000.0 + answer * 4000.0) / 1e6
    # a call goes only while what is spent, reserved in flight and its own estimate fit: a few calls
    options = ScoreOptions(judge_budget_usd=one_call * 1.5, prices=prices, concurrency=2)
    summary = run_scoring(str(db), judge=judge, options=options)
    assert summary.stopped == "budget_usd"
    scored = summary.scored["judge"]
    assert 1 <= scored < 30
    assert summary.judge_usd_spent is not None and 0 < summary.judge_usd_spent <= one_call * 1.5
    # what was spent is the price of the tokens the judge reported, as recorded on the scores
    ((tokens_in, tokens_out),) = _rows(db, "SELECT sum(input_tokens), sum(output_tokens) FROM shadow_scores")
    assert summary.judge_usd_spent == pytest.approx((tokens_in * 1000.0 + tokens_out * 4000.0) / 1e6, rel=1e-4)
    assert any("judge's dollar budget is spent" in line for line in summary.lines())
    rest = run_scoring(str(db), judge=judge, options=ScoreOptions(judge_budget_usd=100.0, prices=prices))
    assert rest.stopped is None and rest.scored == {"judge": 30 - scored}
    assert _rows(db, "SELECT count(*), count(DISTINCT candidate_span_id) FROM shadow_scores") == [(30, 30)]


def test_the_cli_prices_the_judge_from_the_shared_table_and_refuses_a_model_without_a_price(
    llm: LLMServer, pairs_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = pairs_db(4)
    argv = [
        "score",
        "--db",
        str(db),
        "--judge-model",
        "sim-judge",
        "--judge-base-url",
        llm.openai_url,
        "--judge-budget-usd",
        "5.00",
        "--bias-check",
        "0",
        "--format",
        "json",
        "--no-progress",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no price for judge model 'sim-judge'" in err and "OTEL_SHADOW_PRICES" in err
    assert _judge_requests(llm) == 0
    prices = tmp_path / "prices.yaml"
    prices.write_text("sim-judge: {input: 2.0, output: 8.0}\n")
    monkeypatch.setenv("OTEL_SHADOW_PRICES", str(prices))
    main(argv)
    summary = json.loads(capsys.readouterr().out)
    assert summary["scored"] == {"judge": 4} and summary["stopped"] is None
    ((tokens_in, tokens_out),) = _rows(db, "SELECT sum(input_tokens), sum(output_tokens) FROM shadow_scores")
    assert summary["judge_usd_spent"] == pytest.approx((tokens_in * 2.0 + tokens_out * 8.0) / 1e6, rel=1e-4)
    assert summary["judge_budget_usd"] == 5.0


def _first_pair(db: Path, judge: Judge) -> Any:
    from otel_shadow.access import open_reader
    from otel_shadow.scoring.pairs import read_pages

    reader = open_reader(str(db))
    try:
        return next(read_pages(reader, ["x"], page_size=1)).pairs[0]
    finally:
        reader.close()


def test_the_anthropic_client_judges_as_well(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(3)
    judge = Judge(JudgeConfig(model="sim-judge", provider="anthropic", base_url=llm.anthropic_url))
    summary = run_scoring(str(db), judge=judge)
    assert summary.scored == {"judge": 3} and summary.tokens_spent > 0
    assert {r["path"] for r in llm.requests} == {"/v1/messages"} and len(llm.requests) >= 3  # (+ any SDK retry)
    assert _rows(db, "SELECT DISTINCT label, model FROM shadow_scores") == [("win", "sim-judge")]


def test_an_unknown_judge_model_stops_with_a_clear_error_and_keeps_nothing_half_done(
    llm: LLMServer, pairs_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = pairs_db(3)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "score",
                "--db",
                str(db),
                "--judge-model",
                "no-such-judge",
                "--judge-base-url",
                llm.openai_url,
                "--no-progress",
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "refused model 'no-such-judge'" in err and "--judge-model" in err
    assert _rows(db, "SELECT count(*) FROM shadow_scores") == [(0,)]


def test_the_cli_prints_a_json_summary(llm: LLMServer, pairs_db: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = pairs_db(4, replicate_rate=1.0)
    main(
        [
            "score",
            "--db",
            str(db),
            "--embeddings",
            llm.openai_url,
            "--embedding-model",
            "sim-embed",
            "--no-replicates",
            "--format",
            "json",
            "--no-progress",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["scored"] == {"semantic_similarity": 4} and summary["to_score"] == 4


def test_bad_options_are_refused_before_anything_runs(
    llm: LLMServer, pairs_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = pairs_db(1)
    for argv, message in [
        (["--embeddings", "ftp://x"], "give 'local' or the base URL"),
        (["--embeddings", llm.openai_url], "needs --embedding-model"),
        ([], "nothing to score with"),
        (["--judge-model", "sim-judge", "--rubric", str(db.parent / "missing.yaml")], "does not exist"),
        (
            ["--embeddings", llm.openai_url, "--embedding-model", "sim-embed", "--judge-budget-usd", "1"],
            "give --judge-model too",
        ),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["score", "--db", str(db), "--no-progress", *argv])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert llm.requests == []


def test_a_judge_that_keeps_failing_stops_the_run_with_the_reason(llm: LLMServer, pairs_db: Any) -> None:
    db = pairs_db(15)
    judge = Judge(JudgeConfig(model="sim-broken", base_url=llm.openai_url), max_retries=0)
    with pytest.raises(JudgeError, match=r"failed 10 times in a row after retries \(last: InternalServerError"):
        run_scoring(str(db), judge=judge, options=ScoreOptions(concurrency=1))
    assert _judge_requests(llm) == 10
    assert _rows(db, "SELECT count(*) FROM shadow_scores") == [(0,)]


def test_an_embeddings_endpoint_that_refuses_stops_with_a_clear_error(
    llm: LLMServer, pairs_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = pairs_db(2)
    with pytest.raises(SystemExit):
        main(["score", "--db", str(db), "--embeddings", llm.openai_url, "--embedding-model", "gpt-4o", "--no-progress"])
    assert "failed for model 'gpt-4o'" in capsys.readouterr().err
