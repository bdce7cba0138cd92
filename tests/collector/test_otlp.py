"""OTLP conformance: both transports, both encodings, gzip, limits, partial success, errors."""

from __future__ import annotations

import gzip
import os
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from otel_shadow.collector import Collector

from ..store.otlp import pair, request, span

SERVICE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def grpc_export(collector: Collector, body: bytes, metadata: Any = None, compression: Any = None) -> bytes:
    channel = grpc.insecure_channel(f"127.0.0.1:{collector.grpc.port}")
    try:
        call = channel.unary_unary(SERVICE, request_serializer=None, response_deserializer=None)
        return call(body, metadata=metadata, timeout=20, compression=compression)
    finally:
        channel.close()


def http_url(collector: Collector, path: str = "/v1/traces") -> str:
    return f"http://127.0.0.1:{collector.http_port}{path}"


def query(collector: Collector, sql: str) -> list[tuple[Any, ...]]:
    return collector._store.query(sql).rows  # type: ignore[union-attr]


def test_grpc_protobuf_lands_with_links_and_events(collector: Collector) -> None:
    p, c = pair()
    c.events.add(time_unix_nano=c.start_time_unix_nano, name="first_chunk")
    response = ExportTraceServiceResponse.FromString(grpc_export(collector, request(p, c).SerializeToString()))
    assert not response.HasField("partial_success")
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(1,)]
    assert query(collector, "SELECT name FROM span_events") == [("first_chunk",)]


def test_grpc_gzip(collector: Collector) -> None:
    grpc_export(collector, request(*pair()).SerializeToString(), compression=grpc.Compression.Gzip)
    assert query(collector, "SELECT count(*) FROM spans") == [(2,)]


def test_http_protobuf_and_gzip_answer_in_protobuf(collector: Collector) -> None:
    body = request(*pair()).SerializeToString()
    plain = httpx.post(http_url(collector), content=body, headers={"Content-Type": "application/x-protobuf"})
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse.FromString(plain.content)
    zipped = httpx.post(
        http_url(collector),
        content=gzip.compress(request(*pair()).SerializeToString()),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert zipped.status_code == 200
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(2,)]


def test_http_json_follows_the_otlp_json_rules(collector: Collector) -> None:
    trace_id, parent_id, child_id = os.urandom(16), os.urandom(8), os.urandom(8)
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}]},
                "futureField": {"ignored": True},  # unknown fields MUST be ignored
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id.hex().upper(),  # hex, case-insensitive
                                "spanId": parent_id.hex(),
                                "name": "exp",
                                "kind": 1,  # enums as integers
                                "startTimeUnixNano": "1700000000000000000",  # int64 as a string
                                "endTimeUnixNano": 1700000000250000000,  # numbers accepted too
                                "attributes": [
                                    {"key": "shadow.experiment", "value": {"stringValue": "e"}},
                                    {"key": "shadow.role", "value": {"stringValue": "primary"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                                ],
                            },
                            {
                                "traceId": trace_id.hex(),
                                "spanId": child_id.hex(),
                                "parentSpanId": parent_id.hex(),
                                "name": "exp",
                                "startTimeUnixNano": "1700000000300000000",
                                "endTimeUnixNano": "1700000000400000000",
                                "attributes": [
                                    {"key": "shadow.experiment", "value": {"stringValue": "e"}},
                                    {"key": "shadow.role", "value": {"stringValue": "candidate"}},
                                ],
                                "links": [
                                    {
                                        "traceId": trace_id.hex(),
                                        "spanId": parent_id.hex(),
                                        "attributes": [{"key": "shadow.link", "value": {"stringValue": "primary"}}],
                                    }
                                ],
                            },
                        ]
                    }
                ],
            }
        ]
    }
    response = httpx.post(http_url(collector), json=body)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {}
    rows = query(
        collector,
        "SELECT hex_trace_id(trace_id), hex_span_id(span_id), duration_ms, gen_ai_usage_input_tokens, service_name "
        "FROM spans WHERE role = 'primary'",
    )
    assert rows == [(trace_id.hex(), parent_id.hex(), 250.0, 12, "js-app")]
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(1,)]


def test_invalid_spans_get_partial_success_on_both_transports(collector: Collector) -> None:
    good, bad = span("good", {"shadow.experiment": "e"}), span("bad", {"shadow.experiment": "e"}, span_id=b"123")
    body = request(good, bad).SerializeToString()
    response = ExportTraceServiceResponse.FromString(grpc_export(collector, body))
    assert response.partial_success.rejected_spans == 1
    assert "span_id 8 bytes" in response.partial_success.error_message
    bad_json = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "abcd", "name": "x"}]}]}]}
    answer = httpx.post(http_url(collector), json=bad_json)
    assert answer.status_code == 200 and answer.json()["partialSuccess"]["rejectedSpans"] == "1"


def test_malformed_bodies_are_invalid_argument_and_the_next_request_lands(collector: Collector) -> None:
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(collector, b"\xff\xff\xff not protobuf")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for body, content_type in ((b"{not json", "application/json"), (b"\x0a\xff\xff", "application/x-protobuf")):
        answer = httpx.post(http_url(collector), content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 400
        if content_type == "application/json":
            assert answer.json()["code"] == 3 and "not valid JSON" in answer.json()["message"]
        else:
            assert status_pb2.Status.FromString(answer.content).code == 3
    bad_hex = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz" * 16, "spanId": "ab" * 8}]}]}]}
    assert httpx.post(http_url(collector), json=bad_hex).status_code == 400
    grpc_export(collector, request(*pair()).SerializeToString())
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(1,)]


def test_size_limit_applies_after_decompression(start_collector: Any) -> None:
    collector = start_collector(max_request_bytes=64 * 1024)
    bomb = gzip.compress(b"\0" * (1024 * 1024))  # ~1 KiB that inflates to 1 MiB
    answer = httpx.post(
        http_url(collector),
        content=bomb,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert len(bomb) < 64 * 1024 and answer.status_code == 413
    big = request(*[s for _ in range(300) for s in pair(primary_hash="x" * 300)]).SerializeToString()
    assert len(big) > 64 * 1024
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(collector, big)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (
        httpx.post(http_url(collector), content=big, headers={"Content-Type": "application/x-protobuf"}).status_code
        == 413
    )


def test_wrong_method_and_content_type(collector: Collector) -> None:
    assert httpx.get(http_url(collector)).status_code == 405
    assert httpx.post(http_url(collector), content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415


def test_empty_request_is_success(collector: Collector) -> None:
    assert grpc_export(collector, b"") == b""
    assert (
        httpx.post(http_url(collector), content=b"", headers={"Content-Type": "application/x-protobuf"}).status_code
        == 200
    )


def test_by_default_only_shadow_spans_are_stored_and_the_rest_counted(start_collector: Any) -> None:
    collector = start_collector()
    grpc_export(collector, request(span("http"), span("exp", {"shadow.experiment": "e"})).SerializeToString())
    assert query(collector, "SELECT name FROM spans") == [("exp",)]
    assert collector.stats()["spans_skipped"] == 1
    everything = start_collector(store_all=True, db=str(collector.config.db) + ".all")
    grpc_export(everything, request(span("http"), span("exp", {"shadow.experiment": "e"})).SerializeToString())
    assert sorted(query(everything, "SELECT name FROM spans")) == [("exp",), ("http",)]


def test_retried_batches_are_stored_once(collector: Collector) -> None:
    body = request(*pair()).SerializeToString()
    for _ in range(3):
        grpc_export(collector, body)
        httpx.post(http_url(collector), content=body, headers={"Content-Type": "application/x-protobuf"})
    assert query(collector, "SELECT count(*) FROM spans") == [(2,)]
    assert collector.stats()["requests_duplicate"] == 5


def test_health_readiness_and_metrics(collector: Collector) -> None:
    assert httpx.get(http_url(collector, "/healthz")).text == "ok"
    assert httpx.get(http_url(collector, "/readyz")).status_code == 200
    grpc_export(collector, request(*pair()).SerializeToString())
    metrics = httpx.get(http_url(collector, "/metrics"), params={"format": "json"}).json()
    assert metrics["spans_stored"] == 2 and metrics["batches_committed"] == 1 and metrics["commit_ms_p50"] > 0
    assert "otel_shadow_collector_spans_stored 2" in httpx.get(http_url(collector, "/metrics")).text


def test_a_malformed_attribute_inside_a_valid_request_is_refused_whole(collector: Collector) -> None:
    """Attributes are decoded lazily (store.wire); a bad one still fails the request, on both transports."""
    from ..store.test_wire import malformed_attribute_request

    body = malformed_attribute_request()
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(collector, body)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    answer = httpx.post(http_url(collector), content=body, headers={"Content-Type": "application/x-protobuf"})
    assert answer.status_code == 400
    assert query(collector, "SELECT count(*) FROM spans") == [(0,)]
