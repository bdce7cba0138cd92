"""Spans to two places at once: an OTLP endpoint and a local DuckDB file, from one TracerProvider.

The OTLP exporter feeds the tracing backend you already run (an OpenTelemetry Collector, Jaeger,
or `otel-shadow collector`); the DuckDB exporter keeps a local copy that `otel-shadow sql` and
`otel-shadow report` read at once. Each exporter has its own BatchSpanProcessor, so a slow or
absent backend never holds up the other, nor the user's call.

Run (see README.md: the local model server and two environment variables first):

    pip install opentelemetry-exporter-otlp-proto-grpc
    otel-shadow collector --db collector.duckdb &      # or any OTLP backend on :4317
    cd examples
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_SHADOW_DB=local.duckdb python otlp_and_duckdb.py
    otel-shadow sql --db local.duckdb "SELECT candidate_config_id, candidate_outcome, output_match FROM shadow_pairs"

With no code at all, `OTEL_TRACES_EXPORTER=otlp,duckdb opentelemetry-instrument python app.py`
builds the same two exporters.
"""

from my_llm import llm_call
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_shadow import Config, Shadow
from otel_shadow.store.exporter import DuckDBSpanExporter

provider = TracerProvider(resource=Resource.create({"service.name": "otlp-and-duckdb-example"}))
provider.add_span_processor(
    BatchSpanProcessor(OTLPSpanExporter())
)  # OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4317)
provider.add_span_processor(BatchSpanProcessor(DuckDBSpanExporter()))  # OTEL_SHADOW_DB (default otel-shadow.duckdb)
trace.set_tracer_provider(provider)

shadow = Shadow(configs=[{"model": "gpt-4o", "temperature": 0.2}, {"model": "gpt-5-beta", "temperature": 0.2}])

QUESTIONS = ["What is shadow testing?", "What does a collector do?", "Why store spans in DuckDB?"]


@shadow.experiment()
def answer(question: str, config: Config) -> str:
    return llm_call(config["model"], question, config["temperature"])


if __name__ == "__main__":
    for question in QUESTIONS:
        print(f"{question} -> {answer(question)}")
    shadow.flush(10)  # a script ends here: let the background candidates finish first
    provider.shutdown()  # flushes both exporters
