"""The SQL views users type against: shadow_runs, shadow_pairs, shadow_summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow.store import Store, Writer
from otel_shadow.store.exporter import DuckDBSpanExporter

from .otlp import pair, request

PAIRS_COLUMNS = {
    "experiment",
    "trace_id",
    "primary_span_id",
    "candidate_span_id",
    "primary_config_id",
    "candidate_config_id",
    "primary_duration_ms",
    "candidate_duration_ms",
    "primary_outcome",
    "candidate_outcome",
    "output_match",
    "primary_input_tokens",
    "primary_output_tokens",
    "candidate_input_tokens",
    "candidate_output_tokens",
    "start_time",
}


def test_shadow_pairs_has_the_documented_columns(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        Writer(store).write(request(*pair()))
        columns = set(store.query("SELECT * FROM shadow_pairs").columns)
    assert columns >= PAIRS_COLUMNS


def test_sdk_spans_through_the_exporter_become_pairs(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    exporter = DuckDBSpanExporter(str(db))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    llm = provider.get_tracer("llm")
    shadow = Shadow(configs=[{"model": "a"}, {"model": "b"}], tracer_provider=provider, scheduler=Scheduler(workers=2))

    @shadow.experiment(name="gen")
    def generate(prompt: str, config: Config) -> str:
        with llm.start_as_current_span("chat") as span:  # an instrumented LLM call inside
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.usage.input_tokens", 5)
            span.set_attribute("gen_ai.usage.output_tokens", 7 if config["model"] == "a" else 9)
        if config["model"] == "b" and prompt == "fail":
            raise ValueError("candidate broke")
        return "same" if prompt != "differ" or config["model"] == "a" else "different"

    for prompt in ["same", "differ", "fail"]:
        generate(prompt)
    assert shadow.flush(5)
    provider.shutdown()
    assert exporter.failed == 0
    with Store.open(db, read_only=True) as store:
        rows = store.query(
            "SELECT output_match, candidate_outcome, primary_output_tokens, candidate_output_tokens, "
            "primary_input_tokens FROM shadow_pairs ORDER BY start_time"
        ).rows
    assert rows == [(True, "ok", 7, 9, 5), (False, "ok", 7, 9, 5), (None, "error", 7, 9, 5)]


def test_summary_metrics_match_a_direct_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    primary_ms = rng.uniform(50, 150, 200)
    candidate_ms = primary_ms * rng.uniform(0.9, 1.5, 200)
    spans = []
    for i, (pm, cm) in enumerate(zip(primary_ms, candidate_ms)):
        spans += pair(
            primary_ms=float(pm),
            candidate_ms=float(cm),
            candidate_hash="aa" if i % 4 else "bb",
            candidate_outcome="error" if i % 10 == 0 else "ok",
        )
    with Store.open(tmp_path / "s.duckdb") as store:
        Writer(store).write(request(*spans))
        r = dict(zip(*(lambda q: (q.columns, q.rows[0]))(store.query("SELECT * FROM shadow_summary"))))
    ok = np.array([i % 10 != 0 for i in range(200)])
    assert r["pairs"] == 200 and r["coverage"] == 1.0
    assert r["candidate_error_rate"] == pytest.approx(0.1)
    assert r["primary_error_rate"] == 0.0
    matches = [(i % 4 != 0) for i in range(200) if i % 10 != 0]
    assert r["exact_match_rate"] == pytest.approx(sum(matches) / len(matches))
    assert r["primary_p95_ms"] == pytest.approx(np.percentile(primary_ms, 95), rel=1e-6)
    assert r["candidate_p95_ms"] == pytest.approx(np.percentile(candidate_ms[ok], 95), rel=1e-6)
    assert r["primary_output_tokens_avg"] == 20 and r["candidate_output_tokens_avg"] == 30


def test_noise_floor_counts_replicates_against_their_primary(tmp_path: Path) -> None:
    from ..analysis.helpers import write_pairs

    n = 200
    differs = np.arange(n) % 4 == 0
    write_pairs(tmp_path / "s.duckdb", np.full(n, 10.0), np.full(n, 12.0), replicate_differs=differs)
    with Store.open(tmp_path / "s.duckdb", read_only=True) as store:
        rows = store.query(
            "SELECT experiment, primary_config_id, replicate_pairs, compared, matches, exact_match_rate, replicate_error_rate FROM shadow_noise_floor"
        ).rows
        (summary_pairs,) = store.query("SELECT pairs FROM shadow_summary").rows[0]
    assert rows == [("exp", "P", 200, 200, 150, 0.75, 0.0)]
    assert summary_pairs == 200  # replicates are not counted as candidate pairs


def _view_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    views = ["shadow_runs", "shadow_pairs", "shadow_summary", "shadow_coverage", "shadow_noise_floor"]
    with Store.open(path, read_only=True) as store:
        # attributes (JSON) compared as text; every view sorted on all its columns
        return {
            v: sorted(
                store.query(f"SELECT * REPLACE (CAST(attributes AS VARCHAR) AS attributes) FROM {v}").rows, key=repr
            )
            if v == "shadow_runs"
            else sorted(store.query(f"SELECT * FROM {v}").rows, key=repr)
            for v in views
        }


def test_re_sent_spans_and_links_count_once_in_every_view(tmp_path: Path) -> None:
    from .otlp import span

    pairs = [pair(primary_ms=10.0 + i, candidate_ms=12.0 + i, candidate_hash="aa" if i % 3 else "bb") for i in range(6)]
    executions = [s for p in pairs for s in p]
    # a replicate of the first primary, and an instrumented LLM call (its token counts) under it
    p0 = pairs[0][0]
    replicate = span(
        "exp",
        {"shadow.experiment": "exp", "shadow.role": "replicate", "shadow.config.id": "P", "shadow.outcome": "ok"},
        trace_id=p0.trace_id,
        parent=p0.span_id,
        links=[(p0.trace_id, p0.span_id, {"shadow.link": "primary"})],
    )
    llm_call = span(
        "chat",
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 4},
        trace_id=p0.trace_id,
        parent=replicate.span_id,
    )
    executions.append(replicate)

    # a re-sent primary's LLM call: its provider is the primary's (the primary names none itself)
    p1 = pairs[1][0]
    provider_call = span(
        "chat",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"},
        trace_id=p1.trace_id,
        parent=p1.span_id,
    )

    once, resent = tmp_path / "once.duckdb", tmp_path / "resent.duckdb"
    with Store.open(once) as store:
        Writer(store).write(request(*executions, llm_call, provider_call))
    with Store.open(resent) as store:
        writer = Writer(store)
        writer.write(request(*executions, llm_call, provider_call))
        # the first five spans (each with its link) twice more, in other batches, as a client's
        # retries would; the rest (the replicate and its child among them) stay single
        writer.write(request(*reversed(executions[:5])))
        writer.write(request(*executions[:5]))
        (stored,) = store.query("SELECT count(*) FROM spans").rows[0]
        (links,) = store.query("SELECT count(*) FROM span_links").rows[0]
    assert stored == len(executions) + 2 + 10 and links == 7 + 4  # the copies are in the tables

    expected, got = _view_rows(once), _view_rows(resent)
    assert got == expected
    assert len(got["shadow_pairs"]) == 7  # six candidates and one replicate, each paired once
    assert len(got["shadow_runs"]) == 13
    assert got["shadow_coverage"] == [("exp", 6, 6, 0)]
    assert [r[5] for r in got["shadow_summary"]] == [6]  # pairs
    with Store.open(resent, read_only=True) as store:
        tokens = store.query("SELECT candidate_input_tokens FROM shadow_pairs WHERE candidate_role = 'replicate'").rows
        provider = store.query(
            f"SELECT provider FROM shadow_runs WHERE span_id = {int.from_bytes(p1.span_id, 'big')}"
        ).rows
    assert tokens == [(4,)]  # from its child, counted once
    assert provider == [("openai",)]
