"""``otel-shadow score --clickhouse URL --otlp-endpoint …`` on a real ClickHouse engine (chdb): pairs
and their captured content read from otel_traces as the Collector's exporter writes them (span
attributes, and the GenAI details event), scores sent over OTLP/gRPC to an in-process receiver,
loaded back into otel_traces as the exporter would, then seen by shadow_scores; a second run
scores nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanContext, TraceFlags

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow import attributes as A
from otel_shadow.cli import main
from otel_shadow.clickhouse import create_views, open_clickhouse
from otel_shadow.errors import ConfigError
from otel_shadow.scoring import Judge, JudgeConfig, ScoreOptions, make_embedder, run_scoring
from otel_shadow.testing import LLMServer

from .otel_traces import ClickHouseExporterRows

DETAILS = "gen_ai.client.inference.operation.details"


class OTLPReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver on loopback that keeps what it receives as SDK spans."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request: Any, context: Any) -> Any:  # the gRPC method's name
        received = [
            _span(span, resource.resource.attributes)
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self._lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def stop(self) -> None:
        self.server.stop(None).wait()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _context(trace_id: bytes, span_id: bytes) -> SpanContext:
    return SpanContext(
        int.from_bytes(trace_id, "big"), int.from_bytes(span_id, "big"), True, TraceFlags(TraceFlags.SAMPLED)
    )


def _span(span: Any, resource: list[KeyValue]) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=_context(span.trace_id, span.span_id),
        parent=_context(span.trace_id, span.parent_span_id) if span.parent_span_id else None,
        resource=Resource(_attributes(resource)),
        attributes=_attributes(span.attributes),
        events=[Event(e.name, _attributes(e.attributes), e.time_unix_nano) for e in span.events],
        links=[Link(_context(x.trace_id, x.span_id), _attributes(x.attributes)) for x in span.links],
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
    )


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def _write_spans(provider: TracerProvider) -> None:
    """Four decorated pairs with replicates (content in shadow.input / shadow.output), and two
    zero-code pairs: content as span attributes, and on the GenAI details event."""
    shadow = Shadow(
        configs=[{"style": "short"}, {"style": "long"}],
        tracer_provider=provider,
        capture_content=True,
        replicate_rate=1.0,
        scheduler=Scheduler(workers=2),
    )

    @shadow.experiment(name="qa")
    def generate(prompt: str, config: Config) -> str:
        base = f"The answer to {prompt} is {len(prompt)}."
        return base + " It is explained here in more words." if config["style"] == "long" else base

    for i in range(4):
        generate(f"question {i}")  # type: ignore[call-arg]  # the decorator supplies config
    assert shadow.flush(30)
    tracer = provider.get_tracer("zero-code")
    common = {A.SHADOW_EXPERIMENT: "chat", A.SHADOW_OUTCOME: "ok", A.GEN_AI_OPERATION_NAME: "chat"}
    for i, as_event in enumerate([False, True]):
        with tracer.start_as_current_span(
            "chat gpt-4o", attributes={**common, A.SHADOW_ROLE: "primary", A.SHADOW_CONFIG_ID: "p"}
        ) as primary:
            content = {
                A.GEN_AI_INPUT_MESSAGES: _messages("user", f"zero-code question {i}"),
                A.GEN_AI_OUTPUT_MESSAGES: _messages("assistant", "short"),
            }
            primary.add_event(DETAILS, content) if as_event else primary.set_attributes(content)
        link = Link(primary.get_span_context(), {A.SHADOW_LINK: A.LINK_PRIMARY})
        with tracer.start_as_current_span(
            "chat gpt-5",
            context=trace.set_span_in_context(primary),
            links=[link],
            attributes={**common, A.SHADOW_ROLE: "candidate", A.SHADOW_CONFIG_ID: "c"},
        ) as candidate:
            out = {A.GEN_AI_OUTPUT_MESSAGES: _messages("assistant", "a much longer answer")}
            candidate.add_event(DETAILS, out) if as_event else candidate.set_attributes(out)


@pytest.fixture
def clickhouse(chdb_folder: Path) -> Iterator[str]:
    rows = ClickHouseExporterRows(chdb_folder, "scoring")
    rows.connection.query("TRUNCATE TABLE `scoring`.`otel_traces`")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(rows))
    _write_spans(provider)
    provider.shutdown()  # closes the exporter's connection
    url = f"chdb:{chdb_folder}?database=scoring"
    create_views(url)
    yield url


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    with LLMServer() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    started = OTLPReceiver()
    yield started
    started.stop()


def _judge_calls(llm: LLMServer) -> int:
    return sum(1 for r in llm.requests if r["path"] == "/v1/chat/completions")


def test_clickhouse_pairs_are_scored_over_otlp_and_shadow_scores_reads_them_back(
    llm: LLMServer, clickhouse: str, receiver: OTLPReceiver, chdb_folder: Path
) -> None:
    judge = Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url))
    embedder = make_embedder(llm.openai_url, "sim-embed")
    endpoint = f"127.0.0.1:{receiver.port}"
    options = ScoreOptions(otlp_endpoint=endpoint, otlp_insecure=True, page_size=3)  # several keyset pages
    summary = run_scoring("", judge=judge, embedder=embedder, options=options, clickhouse=clickhouse)
    assert summary.where == f"the OTLP endpoint {endpoint}"
    assert summary.to_score == 10 and summary.no_content == 0  # 4 candidates + 4 replicates + 2 zero-code
    assert summary.scored == {"semantic_similarity": 10, "judge": 10}
    prompts = [r["messages"][1]["content"] for r in llm.requests if r["path"] == "/v1/chat/completions"]
    for text in ("question 3", "user: zero-code question 0", "user: zero-code question 1"):  # attributes and event
        assert any(text in p for p in prompts), text
    assert len(receiver.spans) == 20

    rows = ClickHouseExporterRows(chdb_folder, "scoring")  # the Collector's exporter stores what it received
    rows.export(receiver.spans)
    rows.shutdown()
    with open_clickhouse(clickhouse) as reader:
        scores = reader.query(
            "SELECT s.experiment, s.scorer, s.candidate_role, count() FROM shadow_scores AS s "
            "INNER JOIN shadow_pairs AS p ON p.trace_id = s.trace_id AND p.candidate_span_id = s.candidate_span_id "
            "AND p.primary_span_id = s.primary_span_id GROUP BY ALL ORDER BY ALL"
        ).rows
        labels = reader.query("SELECT label FROM shadow_scores WHERE experiment = 'chat' AND scorer = 'judge'").rows
    assert scores == [
        ("chat", "judge", "candidate", 2),
        ("chat", "semantic_similarity", "candidate", 2),
        ("qa", "judge", "candidate", 4),
        ("qa", "judge", "replicate", 4),
        ("qa", "semantic_similarity", "candidate", 4),
        ("qa", "semantic_similarity", "replicate", 4),
    ]
    assert labels == [("win",), ("win",)]  # the longer answer, read from the attribute and from the event

    before = _judge_calls(llm)
    again = run_scoring("", judge=judge, embedder=embedder, options=options, clickhouse=clickhouse)
    assert again.to_score == 0 and again.scored == {} and again.exported == 0
    assert _judge_calls(llm) == before and len(receiver.spans) == 20


def test_scoring_clickhouse_without_an_otlp_endpoint_is_refused_naming_the_fix(
    llm: LLMServer, clickhouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    judge = Judge(JudgeConfig(model="sim-judge", base_url=llm.openai_url))
    with pytest.raises(
        ConfigError, match="give --otlp-endpoint of the OpenTelemetry Collector that writes otel_traces"
    ):
        run_scoring("", judge=judge, clickhouse=clickhouse)
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--clickhouse", clickhouse, "--judge-model", "sim-judge", "--judge-base-url", llm.openai_url])
    assert exit_info.value.code == 2 and "give --otlp-endpoint" in capsys.readouterr().err
    assert _judge_calls(llm) == 0


def test_a_traces_table_that_is_not_a_plain_name_is_refused(llm: LLMServer, clickhouse: str) -> None:
    options = ScoreOptions(otlp_endpoint="127.0.0.1:9", traces_table="otel_traces; DROP TABLE x")
    with pytest.raises(ConfigError, match="--traces-table .* is not a plain ClickHouse name"):
        run_scoring("", embedder=make_embedder(llm.openai_url, "sim-embed"), options=options, clickhouse=clickhouse)
