"""Canary cohorts on ClickHouse: the same primary and canary calls in DuckDB and in chdb's otel_traces
give the same cohorts and the same unpaired verdict (the dialect reorders the cohorts' join there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow.analysis import Thresholds
from otel_shadow.analysis.canary import build_canary_reports, read_cohorts
from otel_shadow.clickhouse import ClickHouseReader, create_views, open_clickhouse
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter

from .otel_traces import ClickHouseExporterRows
from .simulate import START_NS, with_resent_copies
from .test_differential import _query, _same

CALLS = 300


def _calls(slowdown: float, seed: int = 5) -> list[ReadableSpan]:
    """Primary calls all along; from the middle on, every third call is a canary call of config C."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "canaried-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otel_shadow.tests", "1.0")
    rng = np.random.default_rng(seed)
    for i in range(CALLS):
        canary = i >= CALLS // 2 and i % 3 == 0
        ms = 300.0 * float(np.exp(rng.normal(0.0, 0.3))) * (slowdown if canary else 1.0)
        t0 = START_NS + i * 40_000_000
        span = tracer.start_span(
            "answer",
            start_time=t0,
            attributes={
                "shadow.experiment": "answer",
                "shadow.role": "canary" if canary else "primary",
                "shadow.config.id": "C" if canary else "P",
                "shadow.outcome": "error" if i % 29 == 7 else "ok",
                "shadow.candidates.scheduled": 0,
                "shadow.candidates.dropped": 0,
            },
        )
        span.end(end_time=t0 + int(ms * 1e6))
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, chdb_folder: Path) -> Iterator[tuple[Store, ClickHouseReader]]:
    spans = with_resent_copies(_calls(slowdown=2.5), every=7)
    path = tmp_path_factory.mktemp("canary") / "shadow.duckdb"
    duck = DuckDBSpanExporter(str(path))
    assert duck.export(spans).name == "SUCCESS"
    duck.shutdown()
    rows = ClickHouseExporterRows(chdb_folder, "canary")
    rows.export(spans)
    rows.shutdown()
    url = f"chdb:{chdb_folder}?database=canary"
    create_views(url)
    store = Store.open(path, read_only=True)
    reader = open_clickhouse(url)
    yield store, reader
    reader.close()
    store.close()


def _cohorts(query: Any) -> list[dict[str, Any]]:
    out = []
    for c in read_cohorts(query, min_primary=20):
        for name, cohort in (("canary", c.canary), ("primary", c.primary)):
            out.append(
                {
                    "canary_config_id": c.canary_config_id,
                    "cohort": name,
                    "config_id": cohort.config_id,
                    "judged": cohort.judged,
                    "errors": cohort.errors,
                    "durations_ms": cohort.durations_ms.tolist(),
                    "first_at": cohort.first_at,
                    "last_at": cohort.last_at,
                }
            )
    return out


def test_the_same_calls_make_the_same_canary_cohorts(stores: tuple[Store, ClickHouseReader]) -> None:
    duck, clickhouse = stores
    d, c = _cohorts(_query(duck)), _cohorts(_query(clickhouse))
    # re-sent copies counted once: the canary calls of the second half, and the primary calls from the first on
    assert [(r["cohort"], r["judged"]) for r in d] == [("canary", 50), ("primary", 100)]
    _same(d, c, "canary cohorts")


def test_a_slower_canary_gets_the_same_verdict_on_both_engines(stores: tuple[Store, ClickHouseReader]) -> None:
    duck, clickhouse = stores
    thresholds = Thresholds(min_pairs=20)
    [d] = build_canary_reports(_query(duck), thresholds)
    [c] = build_canary_reports(_query(clickhouse), thresholds)
    assert d.verdict in ("FAIL", "MARGINAL")  # 2.5x slower over 50 calls: a real difference shows
    _same(d.to_dict(), c.to_dict(), "canary report")
