"""The edge's comparison metrics in the verdict: agreement read against the replicates, JSON validity
against the primary's own. Real spans through the SDK and the in-process exporter, the real report."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow.analysis import build_report
from otel_shadow.analysis.gates import GateResult
from otel_shadow.core.config import config_id_of
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter


def run(path: Path, calls: int = 160) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(str(path))))
    scheduler = Scheduler(workers=2, max_pending=1000)
    shadow = Shadow(
        configs=[{"model": "primary"}, {"model": "shouting"}, {"model": "sloppy"}],
        tracer_provider=provider,
        scheduler=scheduler,
        replicate_rate=1.0,
    )

    @shadow.experiment(name="extract")
    def extract(n: int, config: Config) -> str:
        answer = f'{{"answer": "yes", "n": {n}}}'
        if config["model"] == "shouting":
            return answer.upper()  # agrees once case is ignored; still valid JSON
        if config["model"] == "sloppy" and n % 2:
            return "the answer is yes"  # half the time: different words, and not JSON
        return answer

    for n in range(calls):
        extract(n)  # type: ignore[call-arg]  # the decorator supplies config
    assert scheduler.flush(30)
    scheduler.shutdown(1)
    provider.shutdown()


def gates_of(path: Path) -> dict[str, dict[str, GateResult]]:
    with Store.open(path, read_only=True) as store:
        report = build_report(lambda sql: (lambda r: (r.columns, r.rows))(store.query(sql)))
    return {c.candidate_config_id: {g.name: g for g in c.gates} for c in report.candidates}


def test_agreement_metrics_pass_at_the_floor_and_fail_below_it(tmp_path: Path) -> None:
    run(tmp_path / "s.duckdb")
    gates = gates_of(tmp_path / "s.duckdb")
    shouting, sloppy = gates[config_id_of({"model": "shouting"})], gates[config_id_of({"model": "sloppy"})]
    assert shouting["metric_normalized_match"].status == "PASS"  # exact match would say 0%
    assert (shouting["agreement"].estimate or 0.0) < -0.9  # ... as the exact-match gate does
    assert shouting["json_valid"].status == "PASS"
    assert sloppy["metric_normalized_match"].status == "FAIL"
    assert sloppy["metric_normalized_match"].estimate == -0.5  # 50% vs the replicates' 100%
    assert sloppy["metric_similarity"].status == "FAIL"
    assert sloppy["json_valid"].status == "FAIL"
    assert "JSON validity" in sloppy["json_valid"].reason and "limit" in sloppy["json_valid"].reason


def test_without_replicates_agreement_metrics_are_reported_not_gated(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(str(path))))
    scheduler = Scheduler(workers=2)
    shadow = Shadow(configs=[{"m": "a"}, {"m": "b"}], tracer_provider=provider, scheduler=scheduler)

    @shadow.experiment(name="e")
    def e(n: int, config: Config) -> str:
        return f"{config['m']} {n}"

    for n in range(20):
        e(n)  # type: ignore[call-arg]  # the decorator supplies config
    assert scheduler.flush(10)
    scheduler.shutdown(1)
    provider.shutdown()
    (candidate,) = gates_of(path).values()
    assert candidate["metric_similarity"].status == "INFO"
    assert "no noise floor" in candidate["metric_similarity"].reason
