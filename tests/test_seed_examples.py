"""Every example of the seed how-to (000_02d4db381b5f0501.txt) runs with only its import line changed.

The example files live in ``tests/seed_examples/``; each test runs one and checks what the user
saw, what the candidates returned, and the spans both executions left.
"""

from __future__ import annotations

import asyncio
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from otel_shadow import attributes as A
from otel_shadow.core.scheduler import default_scheduler

HERE = Path(__file__).parent / "seed_examples"


@pytest.fixture
def run_example(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.chdir(HERE)

    def run(name: str, main: bool = False) -> dict[str, Any]:
        for mod in [m for m in sys.modules if m.startswith("ex0")]:
            del sys.modules[mod]
        return runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__" if main else name)

    return run


def _by_role(spans: Any, experiment: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in spans:
        if span.attributes.get(A.SHADOW_EXPERIMENT) == experiment:
            out.setdefault(span.attributes[A.SHADOW_ROLE], []).append(span)
    return out


def test_how_it_works_returns_primary_and_runs_the_shadow(run_example: Any, global_spans: Any) -> None:
    ns = run_example("ex01_how_it_works")
    assert ns["result"] == "[gpt-4@0.5] What is AI?"
    assert default_scheduler().flush(5)
    roles = _by_role(global_spans.get_finished_spans(), "api_call")
    (primary,) = roles["primary"]
    (candidate,) = roles["candidate"]
    assert candidate.attributes["shadow.config.model"] == "gpt-5-beta"
    assert candidate.context.trace_id == primary.context.trace_id
    assert candidate.links[0].context.span_id == primary.context.span_id
    assert candidate.links[0].attributes[A.SHADOW_LINK] == "primary"


def test_default_behavior_prints_what_the_user_sees(run_example: Any, capsys: Any) -> None:
    run_example("ex02_default_behavior", main=True)
    assert capsys.readouterr().out == "User sees: Using gpt-4 with temp 0.5\n"


def test_waiting_collects_shadow_results(run_example: Any, capsys: Any) -> None:
    run_example("ex03_waiting")
    assert capsys.readouterr().out.splitlines() == [
        "Main: Using gpt-4 with temp 0.5",
        "Shadow: Using gpt-3.5 with temp 0.7",
    ]


def test_fastapi_endpoint_answers_with_the_primary(run_example: Any, global_spans: Any) -> None:
    ns = run_example("ex04_fastapi")
    client = TestClient(ns["app"])
    response = client.post("/summarize", params={"text": "shadow testing"})
    assert response.status_code == 200
    assert response.json() == {"summary": "[gpt-4@0.5] Summarize: shadow testing"}
    assert default_scheduler().flush(5)
    roles = _by_role(global_spans.get_finished_spans(), "generate_summary")
    assert roles["candidate"][0].attributes["shadow.config.model"] == "gpt-4-turbo"
    assert roles["candidate"][0].attributes[A.SHADOW_OUTCOME] == "ok"


def test_async_example_returns_primary_and_candidate_runs_on_the_loop(
    run_example: Any, capsys: Any, global_spans: Any
) -> None:
    ns = run_example("ex05_async")

    async def main_then_flush() -> None:
        await ns["main"]()
        assert await default_scheduler().aflush(5)

    asyncio.run(main_then_flush())
    assert capsys.readouterr().out == "User sees: [gpt-4@0.5] Explain quantum computing\n"
    roles = _by_role(global_spans.get_finished_spans(), "async_generate")
    assert roles["candidate"][0].attributes[A.SHADOW_OUTCOME] == "ok"
    assert roles["candidate"][0].attributes["shadow.config.model"] == "claude-3"


def test_comparing_results_prints_each_variant(run_example: Any, capsys: Any) -> None:
    ns = run_example("ex06_comparing")
    out = capsys.readouterr().out
    main = ns["result"].main_result
    assert main.result == "[gpt-4@0.5] What is machine learning?"
    assert f"Primary: {main.config_id}" in out
    assert out.count("✗ Different output") == 2
    assert "Result: [gpt-4@0.9] What is machine learning?" in out
    assert "Result: [claude-3@0.5] What is machine learning?" in out
    ids = {v.config_id for v in ns["result"].variant_results}
    assert len(ids) == 2 and main.config_id not in ids


def test_error_handling_isolates_the_failing_shadow(run_example: Any, global_spans: Any) -> None:
    ns = run_example("ex07_errors")
    assert ns["result"] == "[gpt-4@0.5] Test query"
    assert default_scheduler().flush(5)
    roles = _by_role(global_spans.get_finished_spans(), "robust_api_call")
    (candidate,) = roles["candidate"]
    assert candidate.attributes[A.SHADOW_OUTCOME] == "error"
    assert candidate.events[0].name == "exception"
    assert "broken-model is unavailable" in candidate.events[0].attributes["exception.message"]


def test_best_practices_monitoring_and_structured_logging(run_example: Any, capsys: Any) -> None:
    ns = run_example("ex08_best_practices")
    (variant,) = ns["result"].variant_results
    assert variant.status == "ok" and variant.execution_time_ms >= 0
    assert ns["structured"] == "[production-model@0.5] Explain shadow testing"
    out = capsys.readouterr().out
    assert "experiment_result" in out and "model=production-model" in out


def test_complete_fastapi_example_with_yaml_configs_and_bind(run_example: Any, global_spans: Any) -> None:
    ns = run_example("ex09_complete_fastapi")
    client = TestClient(ns["app"])
    response = client.post("/summarize", json={"text": "a b c d", "max_length": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["summary"] == "[gpt-4@0.3] Summarize in at most 10 words: a b c d"
    assert body["original_length"] == 4
    assert default_scheduler().flush(5)
    roles = _by_role(global_spans.get_finished_spans(), "_generate_summary")
    candidate = roles["candidate"][0]
    assert candidate.attributes["shadow.config.llm.model_config.model"] == "gpt-4-turbo"
    assert candidate.attributes[A.SHADOW_OUTCOME] == "ok"
