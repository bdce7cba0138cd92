"""Real pairs for scoring: decorated experiments (content captured or not) through the real SDK and
the real in-process exporter into a real DuckDB file, and the local model server (judge models and
an embeddings endpoint) that the real openai/anthropic clients talk to."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow.store.exporter import DuckDBSpanExporter
from otel_shadow.testing import LLMServer


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    with LLMServer() as server:
        yield server


def answer(prompt: str, config: Config) -> str:
    """The experiment's output: the 'long' config says more (a judge preferring more words picks it)."""
    base = f"The answer to {prompt} is {len(prompt)}."
    return base + " It is explained here in more words." if config["style"] == "long" else base


def write_pairs(
    db: Path,
    n: int,
    *,
    capture: bool = True,
    replicate_rate: float = 0.0,
    experiment: str = "qa",
    candidate: str = "long",
    start: int = 0,
) -> None:
    """``n`` primary × candidate pairs (primary style 'short') written by the real exporter."""
    exporter = DuckDBSpanExporter(str(db))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    shadow = Shadow(
        configs=[{"style": "short"}, {"style": candidate}],
        tracer_provider=provider,
        capture_content=capture,
        replicate_rate=replicate_rate,
        scheduler=Scheduler(workers=2),
    )

    @shadow.experiment(name=experiment)
    def generate(prompt: str, config: Config) -> str:
        return answer(prompt, config)

    for i in range(start, start + n):
        generate(f"question {i}")  # type: ignore[call-arg]  # the decorator supplies config
    assert shadow.flush(30)
    provider.shutdown()
    assert exporter.failed == 0


@pytest.fixture
def pairs_db(tmp_path: Path) -> Callable[..., Path]:
    def make(n: int = 12, **kwargs: object) -> Path:
        db = tmp_path / "scores.duckdb"
        write_pairs(db, n, **kwargs)  # type: ignore[arg-type]
        return db

    return make
