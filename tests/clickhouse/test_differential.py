"""The same spans in DuckDB (otel-shadow's exporter) and in ClickHouse (the Collector exporter's
otel_traces, on chdb): the same pairs, the same summaries, the same verdicts from the same analysis."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.analysis import Thresholds, build_report
from otel_shadow.analysis.timeline import verdict_timeline
from otel_shadow.clickhouse import ClickHouseReader, create_views, open_clickhouse
from otel_shadow.errors import StoreError
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter

from .otel_traces import ClickHouseExporterRows
from .simulate import simulate, with_resent_copies, with_scores

REQUESTS = 400


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, chdb_folder: Path) -> Iterator[tuple[Store, ClickHouseReader]]:
    root = tmp_path_factory.mktemp("differential")
    spans = with_resent_copies(with_scores(simulate(REQUESTS)))
    duck = DuckDBSpanExporter(str(root / "shadow.duckdb"))
    assert duck.export(spans).name == "SUCCESS"
    duck.shutdown()
    clickhouse = ClickHouseExporterRows(chdb_folder, "differential")
    clickhouse.export(spans)
    clickhouse.shutdown()
    url = f"chdb:{chdb_folder}?database=differential"
    create_views(url)
    PATHS["duckdb"], PATHS["clickhouse"] = str(root / "shadow.duckdb"), url
    store = Store.open(root / "shadow.duckdb", read_only=True)
    reader = open_clickhouse(url)
    yield store, reader
    reader.close()
    store.close()


PATHS: dict[str, str] = {}  # where the fixture's two stores are, for the CLI


def _query(source: Store | ClickHouseReader) -> Any:
    def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = source.query(sql)
        return result.columns, result.rows

    return query


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-9 relative (the engines sum in different orders)."""
    if isinstance(a, float) and isinstance(b, float | int) or isinstance(b, float) and isinstance(a, int):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)), (
            f"{path}: {a} != {b}"
        )
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


PAIR_COLUMNS = (
    "experiment, candidate_config_id, primary_config_id, candidate_role, primary_duration_ms, candidate_duration_ms, "
    "primary_outcome, candidate_outcome, output_match, primary_input_tokens, primary_output_tokens, "
    "candidate_input_tokens, candidate_output_tokens, primary_model, candidate_model, primary_output_length, "
    "candidate_output_length, start_time"
)


def test_the_same_spans_make_the_same_pairs(stores: tuple[Store, ClickHouseReader]) -> None:
    duck, clickhouse = stores
    order = "ORDER BY trace, candidate"
    d = duck.query(
        f"SELECT hex_trace_id(trace_id) AS trace, hex_span_id(primary_span_id) AS primary_id, "
        f"hex_span_id(candidate_span_id) AS candidate, {PAIR_COLUMNS} FROM shadow_pairs {order}"
    )
    c = clickhouse.query(
        f"SELECT trace_id AS trace, primary_span_id AS primary_id, candidate_span_id AS candidate, {PAIR_COLUMNS} "
        f"FROM shadow_pairs {order}"
    )
    assert d.columns == c.columns
    # 400 requests × 3 candidates + a replicate every 4th request; re-sent copies counted once
    assert len(d.rows) == REQUESTS * 3 + REQUESTS // 4
    _same([list(r) for r in d.rows], [list(r) for r in c.rows], "shadow_pairs")


@pytest.mark.parametrize(
    "view, order",
    [
        ("shadow_summary", "experiment, candidate_config_id"),
        ("shadow_coverage", "experiment"),
        ("shadow_noise_floor", "experiment, primary_config_id"),
        ("shadow_metric_summary", "experiment, candidate_config_id, metric"),
        ("shadow_score_summary", "experiment, candidate_config_id, scorer"),
    ],
)
def test_the_same_spans_make_the_same_summaries(stores: tuple[Store, ClickHouseReader], view: str, order: str) -> None:
    duck, clickhouse = stores
    d = duck.query(f"SELECT * FROM {view} ORDER BY {order}")
    c = clickhouse.query(f"SELECT * FROM {view} ORDER BY {order}")
    assert d.columns == c.columns
    assert d.rows, f"{view} is empty: the simulation no longer exercises it"
    _same([list(r) for r in d.rows], [list(r) for r in c.rows], view)


def test_the_same_spans_give_the_same_metrics_per_pair(stores: tuple[Store, ClickHouseReader]) -> None:
    duck, clickhouse = stores
    columns = "candidate_config_id, candidate_role, metric, value"
    d = duck.query(
        f"SELECT hex_span_id(candidate_span_id) AS candidate, {columns} FROM shadow_metrics ORDER BY candidate, metric"
    )
    c = clickhouse.query(
        f"SELECT candidate_span_id AS candidate, {columns} FROM shadow_metrics ORDER BY candidate, metric"
    )
    assert len(d.rows) > REQUESTS
    _same([list(r) for r in d.rows], [list(r) for r in c.rows], "shadow_metrics")


def test_the_same_spans_give_the_same_scores_per_pair(stores: tuple[Store, ClickHouseReader]) -> None:
    duck, clickhouse = stores
    columns = (
        "experiment, primary_config_id, candidate_config_id, candidate_role, scorer, scorer_id, model, score, label, "
        "explanation, consistent, input_tokens, output_tokens, start_time, scored_at"
    )
    order = "ORDER BY candidate, scorer"
    d = duck.query(
        f"SELECT hex_span_id(candidate_span_id) AS candidate, hex_span_id(primary_span_id) AS primary_id, {columns} "
        f"FROM shadow_scores {order}"
    )
    c = clickhouse.query(
        f"SELECT candidate_span_id AS candidate, primary_span_id AS primary_id, {columns} FROM shadow_scores {order}"
    )
    assert len(d.rows) > 2 * REQUESTS and 0.1 not in [r[9] for r in d.rows]  # re-scored pairs keep their first score
    _same([list(r) for r in d.rows], [list(r) for r in c.rows], "shadow_scores")


def test_the_same_spans_get_the_same_verdicts(stores: tuple[Store, ClickHouseReader]) -> None:
    duck, clickhouse = stores
    thresholds = Thresholds(min_pairs=50)
    d = build_report(_query(duck), thresholds)
    c = build_report(_query(clickhouse), thresholds)
    verdicts = {r.candidate_config_id: r.verdict for r in d.candidates}
    # the data is made so that the verdicts differ: a real difference would show
    assert verdicts["C-same"] == "PASS" and verdicts["C-slow"] == "FAIL" and verdicts["C-flaky"] == "FAIL"
    # the comparison metrics (read by their own statement), the noise floor and the batch scores take part
    assert {"agreement", "metric_similarity", "judge_win_rate", "semantic_similarity"} <= {
        g.name for g in d.candidates[0].gates
    }
    # primaries whose candidates were dropped as expired: the experiment ended (read by its own statement)
    assert [(e.experiment, e.expired_calls) for e in d.ended] == [("generate", REQUESTS // 20)]
    _same(d.to_dict(), c.to_dict(), "report")


def test_segmented_report_and_verdict_timeline_are_the_same(stores: tuple[Store, ClickHouseReader]) -> None:
    duck, clickhouse = stores
    thresholds = Thresholds(min_pairs=20)
    d = build_report(_query(duck), thresholds, segment_by="http.route")
    c = build_report(_query(clickhouse), thresholds, segment_by="http.route")
    assert {s.segment for r in d.candidates for s in r.segments} == {"/chat", "/search"}
    _same(d.to_dict(), c.to_dict(), "segmented report")
    d_points = verdict_timeline(_query(duck), d, thresholds, segment_by="http.route", cutoffs=3)
    c_points = verdict_timeline(_query(clickhouse), c, thresholds, segment_by="http.route", cutoffs=3)
    assert len(d_points) > 1
    assert [(p.cutoff_us, p.verdicts) for p in d_points] == [(p.cutoff_us, p.verdicts) for p in c_points]


def test_creating_views_over_a_missing_table_names_it_and_the_fix(chdb_folder: Path) -> None:
    ClickHouseExporterRows(chdb_folder, "renamed", table="otel_traces").shutdown()
    with pytest.raises(StoreError, match=r"renamed\.my_traces exist"):
        create_views(f"chdb:{chdb_folder}?database=renamed", traces_table="my_traces")


def test_the_cli_reports_the_same_on_clickhouse(
    stores: tuple[Store, ClickHouseReader], capsys: pytest.CaptureFixture[str]
) -> None:
    """``otel-shadow report --clickhouse URL`` prints the report ``--db FILE`` prints for the same spans."""
    import json

    from otel_shadow.cli import main

    duck, clickhouse = stores
    duck.close()  # the CLI opens the file itself (DuckDB: one process, one connection to it)
    main(["report", "--db", PATHS["duckdb"], "--format", "json", "--min-pairs", "50"])
    from_duckdb = json.loads(capsys.readouterr().out)
    main(["report", "--clickhouse", PATHS["clickhouse"], "--format", "json", "--min-pairs", "50"])
    from_clickhouse = json.loads(capsys.readouterr().out)
    assert [c["verdict"] for c in from_clickhouse["candidates"]] == ["FAIL", "PASS", "FAIL"]
    _same(from_duckdb, from_clickhouse, "report --format json")
    main(
        [
            "sql",
            "--clickhouse",
            PATHS["clickhouse"],
            "--format",
            "csv",
            "SELECT candidate_config_id, pairs FROM shadow_summary ORDER BY 1",
        ]
    )
    assert capsys.readouterr().out.splitlines() == [
        "candidate_config_id,pairs",
        "C-flaky,400",
        "C-same,400",
        "C-slow,400",
    ]
