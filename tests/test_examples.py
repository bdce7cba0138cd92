"""Every file in ``examples/`` runs, against the local model server over HTTP, and does what it says.

The seed's examples (``ex01``…``ex09``, only their import line changed) run in this process, so
their spans are checked through the in-memory exporter of the global provider; their LLM calls go
through ``examples/my_llm.py`` and the real ``openai`` SDK to ``LLMServer(any_model=True)``. The two
apps of our own run as the README says, in a subprocess: ``openai_app.py`` under
``opentelemetry-instrument`` with its rules file, ``otlp_and_duckdb.py`` against a real collector.
Each test declares the files it runs (``@runs``); a test checks that no file is left undeclared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import runpy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from otel_shadow import attributes as A
from otel_shadow.collector import Collector, CollectorConfig
from otel_shadow.store import Store
from otel_shadow.testing import LLMServer
from otel_shadow.testing.llm_server import answer

EXAMPLES = Path(__file__).parent.parent / "examples"
BIN = Path(sys.executable).parent
_DECLARED: dict[str, list[str]] = {}  # example file (relative to examples/) -> tests that run it


def runs(*files: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare the example files a test runs; the ``example`` fixture runs no other."""

    def declare(test: Callable[..., None]) -> Callable[..., None]:
        for name in files:
            _DECLARED.setdefault(name, []).append(test.__name__)
        test.example_files = files  # type: ignore[attr-defined]
        return test

    return declare


@pytest.fixture(scope="module")
def model_server() -> Iterator[LLMServer]:
    """The local model server, answering the seed's model names too (gpt-4, claude-3…)."""
    with LLMServer(any_model=True) as server:
        yield server


def expected(server: LLMServer, model: str, prompt: str) -> str:
    """What the server answers ``model`` for ``prompt``: what the user must see."""
    spec = server.spec(model)
    assert spec is not None, model
    return answer(model, spec, prompt)


def requests_for(server: LLMServer, model: str) -> list[dict[str, Any]]:
    return [r for r in server.requests if r.get("model") == model]


def _forget_example_modules() -> None:
    for name in [m for m in sys.modules if m.startswith("ex0") or m == "my_llm"]:
        del sys.modules[name]


@pytest.fixture
def server(model_server: LLMServer) -> LLMServer:
    """The module's model server, with the requests of earlier tests forgotten."""
    model_server.requests.clear()
    return model_server


@pytest.fixture
def example(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, server: LLMServer
) -> Iterator[Callable[..., dict[str, Any]]]:
    """Run an example file of this test's ``@runs`` as ``cd examples && python FILE`` would, in-process."""
    declared = getattr(request.function, "example_files", ())
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.chdir(EXAMPLES)
    _forget_example_modules()  # my_llm keeps one client: a fresh one for this server

    def run(name: str, main: bool = False) -> dict[str, Any]:
        assert f"{name}.py" in declared, f"declare {name}.py in @runs of {request.function.__name__}"
        return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__" if main else name)

    yield run
    _forget_example_modules()


def subprocess_env(server: LLMServer, **env: str) -> dict[str, str]:
    return {
        **os.environ,
        "OPENAI_BASE_URL": server.openai_url,
        "OPENAI_API_KEY": "local",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **env,
    }


def _by_role(spans: Any, experiment: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in spans:
        if span.attributes.get(A.SHADOW_EXPERIMENT) == experiment:
            out.setdefault(span.attributes[A.SHADOW_ROLE], []).append(span)
    return out


# --- the seed's examples -------------------------------------------------------------------------


@runs("ex01_how_it_works.py")
def test_how_it_works_returns_the_primary_and_runs_the_shadow(
    example: Any, server: LLMServer, global_spans: Any
) -> None:
    ns = example("ex01_how_it_works")
    assert ns["result"] == expected(server, "gpt-4", "What is AI?")
    assert ns["mint"].flush(10)
    roles = _by_role(global_spans.get_finished_spans(), "api_call")
    (primary,) = roles["primary"]
    (candidate,) = roles["candidate"]
    assert candidate.attributes["shadow.config.model"] == "gpt-5-beta"
    assert candidate.attributes[A.SHADOW_OUTCOME] == "ok"
    assert candidate.attributes[A.SHADOW_OUTPUT_LENGTH] == len(expected(server, "gpt-5-beta", "What is AI?"))
    assert candidate.context.trace_id == primary.context.trace_id
    assert candidate.links[0].context.span_id == primary.context.span_id
    assert candidate.links[0].attributes[A.SHADOW_LINK] == "primary"
    for model in ("gpt-4", "gpt-5-beta"):  # both really went over HTTP
        (sent,) = requests_for(server, model)
        assert sent["messages"] == [{"role": "user", "content": "What is AI?"}]


@runs("ex02_default_behavior.py")
def test_default_behavior_prints_what_the_user_sees(example: Any, capsys: Any) -> None:
    example("ex02_default_behavior", main=True)
    assert capsys.readouterr().out == "User sees: Using gpt-4 with temp 0.5\n"


@runs("ex03_waiting.py", "ex02_default_behavior.py")
def test_waiting_collects_shadow_results(example: Any, capsys: Any) -> None:
    example("ex03_waiting")
    assert capsys.readouterr().out.splitlines() == [
        "Main: Using gpt-4 with temp 0.5",
        "Shadow: Using gpt-3.5 with temp 0.7",
    ]


@runs("ex04_fastapi.py")
def test_fastapi_endpoint_answers_with_the_primary(example: Any, server: LLMServer, global_spans: Any) -> None:
    ns = example("ex04_fastapi")
    response = TestClient(ns["app"]).post("/summarize", params={"text": "shadow testing"})
    assert response.status_code == 200
    assert response.json() == {"summary": expected(server, "gpt-4", "Summarize: shadow testing")}
    assert ns["mint"].flush(10)
    (candidate,) = _by_role(global_spans.get_finished_spans(), "generate_summary")["candidate"]
    assert candidate.attributes["shadow.config.model"] == "gpt-4-turbo"
    assert candidate.attributes[A.SHADOW_OUTCOME] == "ok"
    (sent,) = requests_for(server, "gpt-4-turbo")
    assert sent["temperature"] == 0.5  # the pydantic ModelConfig reached the model


@runs("ex05_async.py")
def test_async_example_returns_the_primary_and_the_candidate_runs_on_the_loop(
    example: Any, server: LLMServer, capsys: Any, global_spans: Any
) -> None:
    ns = example("ex05_async")

    async def main_then_flush() -> None:
        await ns["main"]()
        assert await ns["mint"].aflush(10)

    asyncio.run(main_then_flush())
    assert capsys.readouterr().out == f"User sees: {expected(server, 'gpt-4', 'Explain quantum computing')}\n"
    (candidate,) = _by_role(global_spans.get_finished_spans(), "async_generate")["candidate"]
    assert candidate.attributes[A.SHADOW_OUTCOME] == "ok"
    assert candidate.attributes["shadow.config.model"] == "claude-3"
    assert len(requests_for(server, "claude-3")) == 1


@runs("ex06_comparing.py")
def test_comparing_results_prints_each_variant_and_its_verdict(example: Any, server: LLMServer, capsys: Any) -> None:
    ns = example("ex06_comparing")
    out = capsys.readouterr().out
    prompt = "What is machine learning?"
    main = ns["result"].main_result
    assert main.result == expected(server, "gpt-4", prompt)
    assert f"Primary: {main.config_id}" in out
    variants = {v.config_id: v for v in ns["result"].variant_results}
    assert len(variants) == 2 and main.config_id not in variants
    # The simulated model ignores temperature: gpt-4 at 0.9 agrees with the primary, claude-3 does not.
    hot, claude = ns["result"].variant_results
    assert hot.result == main.result and claude.result == expected(server, "claude-3", prompt) != main.result
    assert out.count("✓ Same output") == 1 and out.count("✗ Different output") == 1
    assert out.index(f"Shadow: {hot.config_id}") < out.index("✓ Same output") < out.index(f"Shadow: {claude.config_id}")
    assert f"Result: {claude.result}" in out
    assert sorted(r["temperature"] for r in requests_for(server, "gpt-4")) == [0.5, 0.9]


@runs("ex07_errors.py")
def test_error_handling_isolates_the_failing_shadow(
    example: Any, server: LLMServer, global_spans: Any, caplog: Any
) -> None:
    ns = example("ex07_errors")
    assert ns["result"] == expected(server, "gpt-4", "Test query")
    assert ns["mint"].flush(20)
    roles = _by_role(global_spans.get_finished_spans(), "robust_api_call")
    assert roles["primary"][0].attributes[A.SHADOW_OUTCOME] == "ok"
    (candidate,) = roles["candidate"]
    assert candidate.attributes[A.SHADOW_OUTCOME] == "error"
    assert candidate.events[0].name == "exception"
    assert "simulated 500 from sim-broken" in candidate.events[0].attributes["exception.message"]
    assert "Error with sim-broken: Error code: 500" in caplog.text  # the user's own except block ran
    assert requests_for(server, "sim-broken")  # the failure came over HTTP


@runs("ex08_best_practices.py")
def test_best_practices_monitoring_and_structured_logging(
    example: Any, server: LLMServer, capsys: Any, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    ns = example("ex08_best_practices")
    (variant,) = ns["result"].variant_results
    assert variant.status == "ok" and variant.execution_time_ms >= 0
    assert variant.result == expected(server, "new-model", "Explain shadow testing")
    assert f"Shadow {variant.config_id}: {variant.execution_time_ms}ms" in caplog.text
    assert ns["structured"] == expected(server, "production-model", "Explain shadow testing")
    out = capsys.readouterr().out
    assert "experiment_result" in out and "model=production-model" in out
    assert f"result_length={len(ns['structured'])}" in out


@runs("ex09_complete_fastapi.py", "config/main.yaml", "config/shadow.yaml")
def test_complete_fastapi_example_with_yaml_configs_and_bind(
    example: Any, server: LLMServer, global_spans: Any
) -> None:
    ns = example("ex09_complete_fastapi")
    response = TestClient(ns["app"]).post("/summarize", json={"text": "a b c d", "max_length": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["summary"] == expected(server, "gpt-4", "Summarize in at most 10 words: a b c d")
    assert body["original_length"] == 4 and body["summary_length"] == len(body["summary"].split())
    assert ns["mint"].flush(10)
    (candidate,) = _by_role(global_spans.get_finished_spans(), "_generate_summary")["candidate"]
    assert candidate.attributes["shadow.config.llm.model_config.model"] == "gpt-4-turbo"
    assert candidate.attributes[A.SHADOW_OUTCOME] == "ok"
    for model in ("gpt-4", "gpt-4-turbo"):  # the YAML's temperature, the seed's max_tokens
        (sent,) = requests_for(server, model)
        assert (sent["temperature"], sent["max_tokens"]) == (0.3, 60)


@runs("my_llm.py")
def test_the_users_llm_functions_call_the_model_over_http(example: Any, server: LLMServer) -> None:
    import my_llm  # type: ignore[import-not-found]

    assert my_llm.llm_api_call("gpt-4", "hello", temperature=0.2, max_tokens=7) == expected(server, "gpt-4", "hello")
    assert my_llm.make_llm_call("claude-3", "hello") == expected(server, "claude-3", "hello")
    assert asyncio.run(my_llm.async_llm_call("gpt-3.5", "hi")) == expected(server, "gpt-3.5", "hi")
    first, second, _ = server.requests
    assert (first["model"], first["temperature"], first["max_tokens"]) == ("gpt-4", 0.2, 7)
    assert "temperature" not in second and "max_tokens" not in second  # unset fields are not sent


# --- our own apps, run as the README says ----------------------------------------------------------


@runs("openai_app.py", "shadow-rules.yaml")
def test_openai_app_is_shadowed_with_no_code_change_through_the_rules_file(server: LLMServer, tmp_path: Path) -> None:
    db = tmp_path / "zero-code.duckdb"
    env = subprocess_env(
        server, OTEL_SHADOW_CONFIG="shadow-rules.yaml", OTEL_TRACES_EXPORTER="duckdb", OTEL_SHADOW_DB=str(db)
    )
    out = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "openai_app.py"],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    questions = ["What is shadow testing?", "Why compare two models on real traffic?", "What is a span link?"]
    assert out.stdout.splitlines() == [f"{q} -> {expected(server, 'gpt-4o', q)}" for q in questions]
    with Store.open(db, read_only=True) as store:
        rows = store.query(
            "SELECT experiment, primary_model, candidate_model, count(*), bool_and(candidate_outcome = 'ok'), bool_and(output_match)"
            " FROM shadow_pairs GROUP BY ALL ORDER BY candidate_model"
        ).rows
    # gpt-4o-mini answers like gpt-4o on the simulated server; gpt-5-beta is terse
    assert rows == [
        ("answers-gpt-4o", "gpt-4o", "gpt-4o-mini", 3, True, True),
        ("answers-gpt-4o", "gpt-4o", "gpt-5-beta", 3, True, False),
    ]
    assert {r["model"] for r in server.requests} == {"gpt-4o", "gpt-4o-mini", "gpt-5-beta"}
    assert [r["temperature"] for r in requests_for(server, "gpt-5-beta")] == [0.2] * 3  # the rule's override


@runs("otlp_and_duckdb.py")
def test_otlp_and_duckdb_example_writes_the_same_pairs_to_both(server: LLMServer, tmp_path: Path) -> None:
    collector = Collector(
        CollectorConfig(db=str(tmp_path / "collector.duckdb"), grpc_port=0, http_port=0, stats_interval_s=3600)
    )
    collector.start()
    try:
        env = subprocess_env(
            server,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.grpc.port}",
            OTEL_SHADOW_DB=str(tmp_path / "local.duckdb"),
        )
        out = subprocess.run(
            [sys.executable, "otlp_and_duckdb.py"], cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        collector.stop(5)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 3
    pairs = "SELECT trace_id, primary_span_id, candidate_span_id, candidate_outcome, output_match FROM shadow_pairs ORDER BY ALL"
    copies = []
    for name in ("local.duckdb", "collector.duckdb"):
        with Store.open(tmp_path / name, read_only=True) as store:
            copies.append(store.query(pairs).rows)
            assert store.query("SELECT DISTINCT service_name FROM spans").rows == [("otlp-and-duckdb-example",)]
    local, received = copies
    assert len(local) == 3 and local == received  # the same spans, by both paths
    assert {row[3:] for row in local} == {("ok", False)}  # gpt-5-beta answers, tersely: no match


# --- the local model server, and no example left behind ----------------------------------------------


def test_the_local_model_server_answers_any_model_name_only_when_asked(
    model_server: LLMServer, request: pytest.FixtureRequest
) -> None:
    client = openai.OpenAI(base_url=model_server.openai_url, api_key="local", max_retries=0)
    request.addfinalizer(client.close)  # its pooled connections are sockets

    def ask(c: openai.OpenAI, model: str) -> str:
        return (
            c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            .choices[0]
            .message.content
            or ""
        )

    assert ask(client, "gpt-4") == ask(client, "gpt-4") != ask(client, "claude-3")  # deterministic, distinct per model
    assert ask(client, "gpt-5-beta") == expected(model_server, "gpt-5-beta", "hi")  # known names keep their behaviour
    assert model_server.spec("gpt-5-beta") is model_server.models["gpt-5-beta"]
    with LLMServer() as strict:  # the default: an unknown name is a 404, as with a real API
        assert strict.spec("gpt-4") is None
        strict_client = openai.OpenAI(base_url=strict.openai_url, api_key="local", max_retries=0)
        with strict_client, pytest.raises(openai.NotFoundError, match="gpt-4"):
            ask(strict_client, "gpt-4")


def test_every_file_in_examples_is_run_by_a_test() -> None:
    files = {
        p.relative_to(EXAMPLES).as_posix()
        for p in EXAMPLES.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".duckdb" and p.name != "README.md"
    }
    assert sorted(files - set(_DECLARED)) == [], "add a test that runs it, declared with @runs(...)"
    assert sorted(set(_DECLARED) - files) == []


def test_the_examples_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    missing = [p.name for p in EXAMPLES.glob("*.py") if p.name != "my_llm.py" and f"({p.name})" not in readme]
    assert missing == []
