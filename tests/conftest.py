"""Shared fixtures: a real TracerProvider with an in-memory exporter, and a clean environment.

The global tracer provider can be set once per process, so the session installs one whose
exporter each test clears. Tests that need their own provider pass it to ``Shadow`` directly.

The fast lane for local work is ``pytest -m "not slow"``; CI runs everything. ``SLOW`` below names
the tests that are slow by nature (a browser, processes started and killed, file systems filled
up, thousands of calls), each marked ``slow`` at collection, so the list lives in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow.core import sampling

# node id prefixes (a module, a test, or a family of parametrized tests) → why they are slow
SLOW: dict[str, str] = {
    "tests/analysis/test_html_browser.py": "headless Chromium",
    "tests/analysis/test_comparison_gates.py::test_agreement_metrics_pass_at_the_floor_and_fail_below_it": "hundreds of pairs through the SDK",
    "tests/collector/test_healing.py": "decode workers killed, tmpfs file systems filled up",
    "tests/collector/test_interop.py": "other SDKs (Python exporters, Node.js) in their own processes",
    "tests/collector/test_segments_tier.py": "three collectors fed over HTTP; collector processes killed and restarted",
    "tests/collector/test_reliability.py::test_kill_9_under_load_loses_no_acknowledged_span": "collector processes under load, killed",
    "tests/collector/test_reliability.py::test_sigterm_": "collector processes stopped by SIGTERM",
    "tests/collector/test_reliability.py::test_a_database_held_by_another_process_is_a_clear_error": "a collector process",
    "tests/scoring/test_resume_and_collector.py": "score and collector processes, one killed",
    "tests/scoring/test_scores_in_the_verdict.py": "scorer runs against the local model server",
    "tests/store/test_bad_input.py::test_a_full_disk": "a writer process fills a tmpfs",
    "tests/store/test_retention.py::test_a_collector_removes_exactly_what_is_older_while_ingest_goes_on": "a collector fed over gRPC while retention runs",
    "tests/store/test_retention.py::test_the_cli_refuses_a_file_a_collector_holds": "a CLI process beside a collector",
    "tests/store/test_erase.py::test_the_command_is_refused_while_a_collector_holds_the_file": "a CLI process beside a collector",
    "tests/collector/test_ingest_redaction.py::test_the_collector_command_names_the_bad_rules_file": "a collector process",
    "tests/store/test_exporter_entry_point.py::test_opentelemetry_instrument_with_the_duckdb_exporter": "opentelemetry-instrument in a process",
    "tests/rollout/test_alerts_cli.py::test_the_collector_runs_the_watch": "collector processes started, fed and stopped twice",
    "tests/rollout/test_alerts_cli.py::test_watch_beside_a_file_a_collector_holds": "a collector process",
    "tests/rollout/test_alerts_docs.py": "the demo and the alerts page's commands, run",
    "tests/rollout/test_rollout_e2e.py": "hundreds of calls through the real openai client to a model server process; a watch process",
    "tests/test_cli.py::test_demo_": "the demo end to end",
    "tests/test_docs.py::test_the_docs_commands_work_as_written_and_store_rows": "every command the docs show, run",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    matched: set[str] = set()
    for item in items:
        for prefix in SLOW:
            if item.nodeid.startswith(prefix):
                item.add_marker(pytest.mark.slow)
                matched.add(prefix)
    # a renamed test would silently leave the fast lane slow: each entry whose file was collected must match
    # (checked against the module's names, so selecting one test by its node id is not a false alarm)
    modules = {item.nodeid.split("::")[0]: getattr(item, "module", None) for item in items}
    stale = [
        p
        for p in SLOW
        if "::" in p
        and p.split("::")[0] in modules
        and p not in matched
        and not any(name.startswith(p.split("::")[1]) for name in dir(modules[p.split("::")[0]]))
    ]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist (renamed?): {stale}")


GLOBAL_EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(GLOBAL_EXPORTER))
trace.set_tracer_provider(_provider)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_SHADOW_* or content-capture setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("OTEL_SHADOW_") or name == "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT":
            monkeypatch.delenv(name, raising=False)
    sampling._reset_kill_switch_cache()
    yield
    sampling._reset_kill_switch_cache()


@pytest.fixture
def global_spans() -> InMemorySpanExporter:
    """The exporter behind the global provider, emptied for this test."""
    GLOBAL_EXPORTER.clear()
    return GLOBAL_EXPORTER


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider
