"""The narrow table the views read (otel_shadow_span_rows): spans inserted into otel_traces before
``clickhouse-views`` are copied once when it creates the table, spans inserted after arrive through
the materialized view, and re-running ``clickhouse-views`` copies nothing twice. Whatever the order,
the pairs and summaries are those of the DuckDB store holding the same spans."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from otel_shadow.clickhouse import create_views, open_clickhouse
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter

from .otel_traces import ClickHouseExporterRows
from .simulate import simulate, with_resent_copies, with_scores
from .test_differential import PAIR_COLUMNS, _same

REQUESTS = 120
ORDER = "ORDER BY trace, candidate"


@pytest.fixture(scope="module")
def spans() -> list[ReadableSpan]:
    return with_resent_copies(with_scores(simulate(REQUESTS, seed=23)))


@pytest.fixture(scope="module")
def duckdb_rows(tmp_path_factory: pytest.TempPathFactory, spans: list[ReadableSpan]) -> Iterator[dict[str, Any]]:
    path = tmp_path_factory.mktemp("span_table") / "shadow.duckdb"
    duck = DuckDBSpanExporter(str(path))
    assert duck.export(spans).name == "SUCCESS"
    duck.shutdown()
    with Store.open(path, read_only=True) as store:
        yield {
            "pairs": store.query(
                f"SELECT hex_trace_id(trace_id) AS trace, hex_span_id(candidate_span_id) AS candidate, "
                f"{PAIR_COLUMNS} FROM shadow_pairs {ORDER}"
            ).rows,
            "summary": store.query("SELECT * FROM shadow_summary ORDER BY experiment, candidate_config_id").rows,
            "scores": store.query("SELECT count(*) FROM shadow_scores").rows,
        }


def _insert(folder: Path, database: str, spans: Sequence[ReadableSpan]) -> None:
    rows = ClickHouseExporterRows(folder, database)
    rows.export(spans)
    rows.shutdown()


def _clickhouse_rows(folder: Path, database: str) -> dict[str, Any]:
    reader = open_clickhouse(f"chdb:{folder}?database={database}")
    try:
        return {
            "pairs": reader.query(
                f"SELECT trace_id AS trace, candidate_span_id AS candidate, {PAIR_COLUMNS} FROM shadow_pairs {ORDER}"
            ).rows,
            "summary": reader.query("SELECT * FROM shadow_summary ORDER BY experiment, candidate_config_id").rows,
            "scores": reader.query("SELECT count() FROM shadow_scores").rows,
            "stored": reader.query("SELECT count() FROM otel_shadow_span_rows").rows[0][0],
            # the spans the views read, as often as otel_traces holds them (re-sent copies included)
            "extracted": reader.query(
                "SELECT count() FROM otel_traces WHERE has(SpanAttributes.keys, 'shadow.experiment') "
                "OR has(SpanAttributes.keys, 'gen_ai.operation.name') "
                "OR has(SpanAttributes.keys, 'shadow.score.scorer.id')"
            ).rows[0][0],
        }
    finally:
        reader.close()


def _assert_as_duckdb(clickhouse: dict[str, Any], duck: dict[str, Any]) -> None:
    assert len(duck["pairs"]) > REQUESTS * 3
    _same([list(r) for r in duck["pairs"]], [list(r) for r in clickhouse["pairs"]], "shadow_pairs")
    _same([list(r) for r in duck["summary"]], [list(r) for r in clickhouse["summary"]], "shadow_summary")
    assert clickhouse["scores"] == duck["scores"]
    assert clickhouse["stored"] == clickhouse["extracted"], "a span was copied twice, or missed"


def test_spans_inserted_before_clickhouse_views_are_copied_once_when_it_creates_the_table(
    chdb_folder: Path, spans: list[ReadableSpan], duckdb_rows: dict[str, Any]
) -> None:
    _insert(chdb_folder, "span_table_before", spans)
    create_views(f"chdb:{chdb_folder}?database=span_table_before")
    _assert_as_duckdb(_clickhouse_rows(chdb_folder, "span_table_before"), duckdb_rows)


def test_spans_inserted_after_clickhouse_views_arrive_through_the_materialized_view(
    chdb_folder: Path, spans: list[ReadableSpan], duckdb_rows: dict[str, Any]
) -> None:
    ClickHouseExporterRows(chdb_folder, "span_table_after").shutdown()  # the exporter's table, empty
    create_views(f"chdb:{chdb_folder}?database=span_table_after")
    assert _clickhouse_rows(chdb_folder, "span_table_after")["stored"] == 0
    _insert(chdb_folder, "span_table_after", spans[: len(spans) // 3])
    _insert(chdb_folder, "span_table_after", spans[len(spans) // 3 :])
    _assert_as_duckdb(_clickhouse_rows(chdb_folder, "span_table_after"), duckdb_rows)


def test_spans_inserted_on_both_sides_of_clickhouse_views_run_twice_are_each_stored_once(
    chdb_folder: Path, spans: list[ReadableSpan], duckdb_rows: dict[str, Any]
) -> None:
    half = len(spans) // 2
    url = f"chdb:{chdb_folder}?database=span_table_mixed"
    _insert(chdb_folder, "span_table_mixed", spans[:half])
    create_views(url)
    _insert(chdb_folder, "span_table_mixed", spans[half:])
    create_views(url)  # again: the table exists, nothing is copied a second time
    first = _clickhouse_rows(chdb_folder, "span_table_mixed")
    _assert_as_duckdb(first, duckdb_rows)
    create_views(url)
    assert _clickhouse_rows(chdb_folder, "span_table_mixed") == first
