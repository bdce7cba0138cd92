"""Paging over the pairs to score: the pairs view is evaluated once per run, not once per page.

Real pairs through the real SDK and exporter into a DuckDB file; the SQL each path sends is recorded
by wrapping the function that sends it, so the counts are those of the real queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otel_shadow.access import LocalReader
from otel_shadow.scoring import Judge, JudgeConfig, ScoreOptions, run_scoring
from otel_shadow.scoring import runner as runner_module
from otel_shadow.scoring.pairs import MaterializedPairs, read_pages
from otel_shadow.store import QueryResult, Store
from otel_shadow.testing import LLMServer


class CountingReader(LocalReader):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.sql: list[str] = []

    def query(self, sql: str) -> QueryResult:
        self.sql.append(sql)
        return super().query(sql)


def test_materialized_keys_evaluate_the_pairs_view_once_and_page_like_the_keyset(pairs_db: Any) -> None:
    db = pairs_db(30, replicate_rate=0.5)
    with Store.open(db) as store:
        sent: list[str] = []

        def execute(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            sent.append(sql)
            result = store.con.execute(sql)
            return ([d[0] for d in result.description] if result.description else []), result.fetchall()

        keys = MaterializedPairs(execute, ["some-scorer"])
        pages = list(keys.pages(page_size=4))
        keys.close()
        keyset_reader = CountingReader(store)
        keyset_pages = list(read_pages(keyset_reader, ["some-scorer"], page_size=4))

    materialized = [p.key for page in pages for p in page.pairs]
    assert keys.total == len(materialized) > 30  # candidates and replicates
    assert len(set(materialized)) == len(materialized)  # no pair twice
    assert materialized == [p.key for page in keyset_pages for p in page.pairs]  # same pairs, same order
    assert [len(page.pairs) for page in pages][:-1] == [4] * (len(pages) - 1)
    # the pairs view (and the scores view) once in all; a page reads only the temp table and its spans
    assert sum("shadow_pairs" in sql for sql in sent) == 1
    assert sum("shadow_scores" in sql for sql in sent) == 1
    page_sql = [sql for sql in sent if "otel_shadow_score_keys WHERE k >" in sql]
    assert len(page_sql) == len(pages) and not any("shadow_pairs" in sql for sql in page_sql)
    # the keyset path (a collector's read-only endpoint) evaluates the view again for every page,
    # and once more to find the end when the last page came back full (the pair count is random)
    keyset_views = sum("shadow_pairs" in sql for sql in keyset_reader.sql)
    assert len(keyset_pages) > 8
    assert keyset_views == len(keyset_pages) + (len(keyset_pages[-1].pairs) == 4)


def test_a_run_over_its_own_file_evaluates_the_pairs_view_once_however_many_pages(
    llm: LLMServer, pairs_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pairs_db(30)
    sent: list[str] = []
    execute_on = runner_module._execute_on

    def counting(store: Store) -> Any:
        inner = execute_on(store)

        def execute(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            sent.append(sql)
            return inner(sql)

        return execute

    monkeypatch.setattr(runner_module, "_execute_on", counting)
    judge = Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url, bias_check=0.0))
    summary = run_scoring(str(db), judge=judge, options=ScoreOptions(page_size=4))
    assert summary.scored == {"judge": 30} and summary.to_score == 30
    assert sum("shadow_pairs" in sql for sql in sent) == 1
    assert sum("otel_shadow_score_keys WHERE k >" in sql for sql in sent) == 8  # ⌈30 / 4⌉ pages
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*), count(DISTINCT candidate_span_id) FROM shadow_scores").rows == [(30, 30)]
    # the temporary table went with the run's connection; nothing of it is left in the file
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'otel_shadow_score_keys'").rows == [
            (0,)
        ]


def test_a_limit_caps_the_materialized_keys(pairs_db: Any, tmp_path: Path) -> None:
    db = pairs_db(10)
    with Store.open(db) as store:

        def execute(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            result = store.con.execute(sql)
            return ([d[0] for d in result.description] if result.description else []), result.fetchall()

        keys = MaterializedPairs(execute, ["some-scorer"], limit=7)
        pairs = [p for page in keys.pages(page_size=3) for p in page.pairs]
        keys.close()
    assert keys.total == 7 and len(pairs) == 7
    assert [p.start_ns for p in pairs] == sorted(p.start_ns for p in pairs)  # the oldest first
