"""Numeric list columns come back as numpy arrays from the local store; every other value as before."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from otel_shadow.store import Store, json_value
from otel_shadow.store.readonly import QueryLimits

_SQL = """
SELECT 'a' AS name, 3::BIGINT AS n, 2.5::DOUBLE AS x, TIMESTAMP_NS '2024-01-02 03:04:05.123456789' AS at,
       [1.5, 2.5]::DOUBLE[] AS ms, [1, 2]::BIGINT[] AS ids, NULL::DOUBLE[] AS none, []::DOUBLE[] AS empty,
       [1.0, NULL]::DOUBLE[] AS with_null
"""


def test_a_numeric_list_column_is_a_numpy_array_and_the_other_values_are_duckdbs(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        result = store.query(_SQL)
        (plain,) = store.con.execute(_SQL).fetchall()
    (row,) = result.rows
    values = dict(zip(result.columns, row))
    assert isinstance(values["ms"], np.ndarray) and values["ms"].dtype == np.float64
    assert values["ms"].tolist() == [1.5, 2.5] and values["ids"].tolist() == [1, 2]
    assert values["ids"].dtype == np.int64
    assert values["none"] is None and values["empty"].size == 0
    assert values["with_null"] == [1.0, None]  # numpy has no NULL: a list, as DuckDB gives it
    # the scalars are exactly what DuckDB's own fetch returns (TIMESTAMP_NS truncated to µs)
    assert row[:4] == plain[:4] == ("a", 3, 2.5, dt.datetime(2024, 1, 2, 3, 4, 5, 123456))


def test_a_result_bounded_in_bytes_keeps_lists_and_arrays_encode_as_json_lists(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        bounded = store.query(_SQL, limits=QueryLimits(max_result_bytes=10_000)).rows[0]
        local = store.query(_SQL).rows[0]
    assert bounded[4] == [1.5, 2.5] and isinstance(bounded[4], list)
    # what the collector's /v1/sql and `otel-shadow sql --format json` send: the same either way
    assert json.dumps([json_value(v) for v in local]) == json.dumps([json_value(v) for v in bounded])
