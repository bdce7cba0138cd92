"""shadow_metrics and shadow_metric_summary: the edge's comparison metrics, queryable, beside the noise floor."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Real spans through the in-process exporter: 6 calls, a candidate that shouts, a replicate."""
    path = tmp_path / "s.duckdb"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(str(path))))
    scheduler = Scheduler(workers=2)
    shadow = Shadow(
        configs=[{"model": "a"}, {"model": "b"}],
        tracer_provider=provider,
        scheduler=scheduler,
        replicate_rate=1.0,
        metrics=["normalized_match", "similarity", {"key_fields": ["answer"]}],
    )

    @shadow.experiment(name="gen")
    def generate(n: int, config: Config) -> str:
        if config["model"] == "b" and n == 5:
            raise RuntimeError("candidate failed")  # a failed candidate has no metrics
        answer = "yes" if config["model"] == "a" or n % 2 else "no"
        return f'{{"answer": "{answer}", "n": {n}}}'

    for n in range(6):
        generate(n)
    assert scheduler.flush(5)
    scheduler.shutdown(1)
    provider.shutdown()
    return path


def test_each_metric_of_each_ok_pair_is_a_row(db: Path) -> None:
    with Store.open(db, read_only=True) as store:
        rows = store.query(
            "SELECT candidate_role, metric, count(*), sum(value) FROM shadow_metrics GROUP BY ALL ORDER BY ALL"
        ).rows
    assert rows == [
        ("candidate", "field.answer", 5, 2.0),  # n = 1, 3 agree; 0, 2, 4 say "no"; 5 failed
        ("candidate", "key_fields_match", 5, 2.0),
        ("candidate", "normalized_match", 5, 2.0),
        ("candidate", "similarity", 5, pytest.approx(rows[3][3])),
        ("replicate", "field.answer", 6, 6.0),
        ("replicate", "key_fields_match", 6, 6.0),
        ("replicate", "normalized_match", 6, 6.0),
        ("replicate", "similarity", 6, 6.0),
    ]
    assert 2.0 < rows[3][3] < 5.0  # similar, not equal, where the answers differ


def test_the_summary_reads_each_candidate_metric_against_the_replicate_floor(db: Path) -> None:
    with Store.open(db, read_only=True) as store:
        result = store.query(
            "SELECT metric, pairs, candidate_mean, replicate_pairs, replicate_mean, difference_from_floor "
            "FROM shadow_metric_summary WHERE metric = 'normalized_match'"
        )
    assert result.rows == [("normalized_match", 5, 0.4, 6, 1.0, pytest.approx(-0.6))]
