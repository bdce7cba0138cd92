"""Clients no one here wrote: OpenTelemetry's Python gRPC and HTTP exporters, and its JavaScript SDK."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, set_span_in_context

from otel_shadow.collector import Collector

from .test_otlp import query

JS = Path(__file__).parent / "interop_js"


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_python_sdk_exporters(collector: Collector, transport: str) -> None:
    if transport == "grpc":
        exporter = GrpcExporter(endpoint=f"127.0.0.1:{collector.grpc.port}", insecure=True)
    else:
        exporter = HttpExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": f"py-{transport}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("interop")
    primary = tracer.start_span(
        "exp", attributes={"shadow.experiment": "exp", "shadow.role": "primary", "gen_ai.usage.output_tokens": 40}
    )
    primary.add_event("first_chunk", {"index": 1})
    primary.end()
    ctx = primary.get_span_context()
    candidate = tracer.start_span(
        "exp",
        context=set_span_in_context(primary),
        attributes={"shadow.experiment": "exp", "shadow.role": "candidate"},
        links=[Link(ctx, {"shadow.link": "primary"})],
    )
    candidate.end()
    provider.shutdown()
    rows = query(
        collector,
        "SELECT hex_trace_id(trace_id), hex_span_id(primary_span_id), primary_output_tokens FROM shadow_pairs",
    )
    assert rows == [(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", 40)]
    assert query(collector, "SELECT name, attributes->>'$.index' FROM span_events") == [("first_chunk", "1")]
    assert query(collector, "SELECT DISTINCT service_name FROM spans") == [(f"py-{transport}",)]


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """The OpenTelemetry JS SDK, installed from the npm registry into tests/collector/interop_js."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for the JavaScript interoperability test"
    if not (JS / "node_modules" / "@opentelemetry" / "exporter-trace-otlp-http").exists():
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=JS, check=True, timeout=600)
    return JS


def test_javascript_sdk_otlp_http_json(collector: Collector, js_sdk: Path) -> None:
    out = subprocess.run(
        ["node", str(js_sdk / "send.js"), f"http://127.0.0.1:{collector.http_port}/v1/traces"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)
    sources = query(collector, "SELECT DISTINCT source FROM ingest_batches")
    assert sources == [("otlp-http-json",)]
    pairs = query(
        collector,
        "SELECT hex_trace_id(trace_id), hex_span_id(primary_span_id), hex_span_id(candidate_span_id), primary_input_tokens FROM shadow_pairs",
    )
    assert pairs == [(sent["trace"], sent["primary"], sent["candidate"], 12)]
    attrs = query(collector, "SELECT attributes FROM spans WHERE role = 'primary'")[0][0]
    assert json.loads(attrs)["ratio"] == 0.5 and json.loads(attrs)["ok"] is True
    assert query(collector, "SELECT name FROM span_events") == [("first_chunk",)]
    assert query(collector, "SELECT DISTINCT service_name FROM spans") == [("js-interop",)]
