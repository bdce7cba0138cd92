"""A time-bound experiment in the report: that it ended, when, and how many calls went unshadowed.
Real spans through the SDK and the in-process DuckDB exporter, the real report and its renderings."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow.analysis import Report, build_report
from otel_shadow.analysis.html import render_html
from otel_shadow.analysis.render import render_json, render_text
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter


def run(path: Path, name: str, calls: int, **limits: Any) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(str(path))))
    scheduler = Scheduler(workers=2, max_pending=1000)
    shadow = Shadow(configs=[{"m": "a"}, {"m": "b"}], tracer_provider=provider, scheduler=scheduler)

    @shadow.experiment(name=name, **limits)
    def answer(n: int, config: Config) -> str:
        return f"{config['m']} {n}"

    for n in range(calls):
        answer(n)  # type: ignore[call-arg]  # the decorator supplies config
    assert scheduler.flush(10)
    scheduler.shutdown(1)
    provider.shutdown()


def report_of(path: Path) -> Report:
    with Store.open(path, read_only=True) as store:
        return build_report(lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql)))


def primary_starts(path: Path, name: str) -> list[dt.datetime]:
    with Store.open(path, read_only=True) as store:
        rows = store.query(
            f"SELECT start_time FROM shadow_runs WHERE experiment = '{name}' AND role = 'primary' ORDER BY start_time"
        ).rows
    return [r[0] for r in rows]


def test_an_experiment_past_max_calls_is_reported_ended_when_and_how_many_calls_expired(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    run(path, "capped", 20, max_calls=5)
    report = report_of(path)
    (ended,) = report.ended
    starts = primary_starts(path, "capped")
    assert len(starts) == 20
    assert ended.experiment == "capped"
    assert ended.expired_calls == 15
    assert ended.ended_at == starts[5].isoformat()  # the sixth call is the first not shadowed
    (candidate,) = report.candidates
    assert candidate.metrics["pairs"] == 5  # the report still judges the five shadowed calls

    data = json.loads(render_json(report))
    assert data["schema"] == "otel-shadow.report/2"
    assert data["ended"] == [{"experiment": "capped", "ended_at": starts[5].isoformat(), "expired_calls": 15}]
    text = render_text(report)
    assert f"capped: ended at {starts[5].isoformat()} UTC, 15 calls not shadowed" in text
    page = render_html(report)
    assert '<h2 id="ended">' in page
    assert f"<tr><td>capped</td><td>{starts[5].isoformat()}</td><td>15</td></tr>" in page


def test_an_experiment_without_limits_shows_nothing_ended(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    run(path, "open", 20)
    report = report_of(path)
    assert report.candidates and report.candidates[0].metrics["pairs"] == 20
    assert report.ended == []
    assert json.loads(render_json(report))["ended"] == []
    assert "Ended" not in render_text(report)
    assert 'id="ended"' not in render_html(report)


def test_an_ended_experiment_name_is_escaped_in_the_html(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    run(path, "<script>x</script>", 3, max_calls=1)
    (ended,) = report_of(path).ended
    assert ended.expired_calls == 2
    page = render_html(report_of(path))
    assert "<script>x</script>" not in page
    assert "<tr><td>&lt;script&gt;x&lt;/script&gt;</td>" in page
