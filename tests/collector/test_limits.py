"""Limits in bytes and answers for bad input, on the real servers: every input error is a 4xx /
INVALID_ARGUMENT with a reason, both receivers answer from one table, HTTP bodies are held in the
in-flight count before they are read, and the collector's own doors (token, /metrics, bind) are shut."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_shadow.collector import Collector
from otel_shadow.collector.status import ANSWERS, RETRY_INFO_KEY, Outcome
from otel_shadow.store import wire

from ..store.otlp import pair, request, span
from .test_otlp import SERVICE, grpc_export, http_url, query

PROTOBUF = {"Content-Type": "application/x-protobuf"}
TRANSPORTS = ("grpc", "http-protobuf", "http-json")


# ---- helpers ---------------------------------------------------------------------------------------


def to_otlp_json(message: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as an SDK writes it: ids in hex (the protobuf library would write base64)."""
    data = json_format.MessageToDict(message)
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for holder in [s, *s.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex()
    return json.dumps(data).encode()


def send(collector: Collector, transport: str, body: bytes) -> tuple[str, str, ExportTraceServiceResponse | None]:
    """Send over one transport; (outcome name as the table has it, reason, response when stored)."""
    if transport == "grpc":
        try:
            response = ExportTraceServiceResponse.FromString(grpc_export(collector, body))
        except grpc.RpcError as exc:
            outcome = next(o for o, a in ANSWERS.items() if a.grpc == exc.code())
            return outcome.name, exc.details() or "", None
        return "STORED", "", response
    headers = {"Content-Type": "application/json" if transport == "http-json" else "application/x-protobuf"}
    answer = httpx.post(http_url(collector), content=body, headers=headers, timeout=60)
    as_json = transport == "http-json"
    if answer.status_code == 200:
        response = ExportTraceServiceResponse()
        if as_json:
            json_format.Parse(answer.content or b"{}", response)
        else:
            response.ParseFromString(answer.content)
        return "STORED", "", response
    code, message = (answer.json()["code"], answer.json()["message"]) if as_json else _status(answer.content)
    outcome = next(o for o, a in ANSWERS.items() if a.http == answer.status_code and a.code == code)
    return outcome.name, message, None


def _status(content: bytes) -> tuple[int, str]:
    status = status_pb2.Status.FromString(content)
    return status.code, status.message


def encode(message: ExportTraceServiceRequest, transport: str) -> bytes:
    return to_otlp_json(message) if transport == "http-json" else message.SerializeToString()


def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def with_span(setup: Callable[[Span], None], attrs: dict[str, Any] | None = None) -> Span:
    s = span("bad", {"shadow.experiment": "e", **(attrs or {})})
    setup(s)
    return s


def _many_events(s: Span) -> None:
    s.events.extend([Span.Event(time_unix_nano=s.start_time_unix_nano, name="e")] * 70_000)


SPAN_CASES: dict[str, tuple[Span, str]] = {
    "a span kind of 1000": (with_span(lambda s: setattr(s, "kind", 1000)), "kind 1000"),
    "70,000 events": (with_span(_many_events), "70000 events"),
    "a start time of 2^64-1": (
        with_span(lambda s: setattr(s, "start_time_unix_nano", 2**64 - 1)),
        "start_time_unix_nano",
    ),
    "an end time of 2^63-1": (with_span(lambda s: setattr(s, "end_time_unix_nano", 2**63 - 1)), "end_time_unix_nano"),
    "a token count wider than int64": (
        with_span(lambda s: None, {"gen_ai.usage.input_tokens": 1e30}),
        "gen_ai.usage.input_tokens",
    ),
}


# ---- every input error is a 4xx / INVALID_ARGUMENT with a reason ----------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_span_with_a_value_out_of_range_is_rejected_alone_with_a_reason(collector: Collector, transport: str) -> None:
    """Each used to fail the whole request with HTTP 500 / gRPC UNKNOWN (or, for the end time,
    the commit, retryably, forever)."""
    for stored, (name, (bad, reason)) in enumerate(SPAN_CASES.items(), start=1):
        primary, candidate = pair()
        outcome, _, response = send(collector, transport, encode(request(primary, bad, candidate), transport))
        assert outcome == "STORED", name
        assert response is not None and response.partial_success.rejected_spans == 1, name
        assert reason in response.partial_success.error_message and "'bad'" in response.partial_success.error_message
        assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(stored,)], name
    assert query(collector, "SELECT count(*) FROM spans WHERE name = 'bad'") == [(0,)]


def _nested_attribute_request(depth: int) -> bytes:
    """A valid request but for one attribute: an array nested ``depth`` deep."""

    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    value = field(1, b"x")  # AnyValue{string_value: "x"}
    for _ in range(depth):
        value = field(5, field(1, value))  # AnyValue{array_value: ArrayValue{values: [value]}}
    key_value = field(1, b"deep") + field(2, value)
    view = wire.WireRequest()
    view.ParseFromString(request(span("op", {"shadow.experiment": "e"})).SerializeToString())
    view.resource_spans[0].scope_spans[0].spans[0].attributes.append(key_value)
    return view.SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


_SPAN_JSON = '{"traceId":"' + "ab" * 16 + '","spanId":"' + "cd" * 8 + '","name":"x"'
REQUEST_CASES: dict[str, dict[str, tuple[bytes, str]]] = {
    "a JSON integer with 5,000 digits": {
        "http-json": (
            ('{"resourceSpans":[{"scopeSpans":[{"spans":[' + _SPAN_JSON + ',"kind":' + "9" * 5000 + "}]}]}]}").encode(),
            "digits",
        ),
    },
    "nesting a thousand deep": {
        "http-json": (b'{"resourceSpans":[{"x":' + b"[" * 1000 + b"]" * 1000 + b"}]}", "nested too deeply"),
        "http-protobuf": (_nested_attribute_request(1000), "not a valid OTLP protobuf"),
        "grpc": (_nested_attribute_request(1000), "not a valid OTLP protobuf"),
    },
    "a JSON intValue wider than int64": {
        "http-json": (
            (
                '{"resourceSpans":[{"scopeSpans":[{"spans":['
                + _SPAN_JSON
                + ',"attributes":[{"key":"gen_ai.usage.input_tokens",'
                '"value":{"intValue":"99999999999999999999"}}]}]}]}]}'
            ).encode(),
            "intValue",
        ),
    },
}


@pytest.mark.parametrize("case", list(REQUEST_CASES))
def test_a_request_that_cannot_be_decoded_is_invalid_argument_with_a_reason(collector: Collector, case: str) -> None:
    for transport, (body, reason) in REQUEST_CASES[case].items():
        outcome, message, _ = send(collector, transport, body)
        assert (outcome, transport) == ("MALFORMED", transport)
        assert reason in message, (transport, message)
    outcome, _, _ = send(collector, "grpc", request(*pair()).SerializeToString())  # and the next one lands
    assert outcome == "STORED" and query(collector, "SELECT count(*) FROM shadow_pairs") == [(1,)]


# ---- one status table for both receivers -----------------------------------------------------------


def test_both_transports_answer_every_outcome_from_the_one_table(
    start_collector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP used to answer 413 with an INVALID_ARGUMENT body while gRPC said RESOURCE_EXHAUSTED."""
    collector = start_collector(token="s3cret", max_request_bytes=64 * 1024)
    auth = {"Authorization": "Bearer s3cret"}
    good = request(*pair()).SerializeToString()
    big = request(*[s for _ in range(300) for s in pair(primary_hash="x" * 300)]).SerializeToString()
    assert len(big) > 64 * 1024

    def grpc_code(body: bytes, metadata: Any = (("authorization", "Bearer s3cret"),)) -> tuple[grpc.StatusCode, Any]:
        channel = grpc.insecure_channel(f"127.0.0.1:{collector.grpc.port}")
        try:
            channel.unary_unary(SERVICE)(body, metadata=metadata, timeout=20)
            return grpc.StatusCode.OK, ()
        except grpc.RpcError as exc:
            return exc.code(), exc.trailing_metadata()
        finally:
            channel.close()

    def http(body: bytes, headers: dict[str, str] = auth) -> httpx.Response:
        return httpx.post(http_url(collector), content=body, headers={**PROTOBUF, **headers}, timeout=20)

    def check(outcome: Outcome, body: bytes, **grpc_kwargs: Any) -> None:
        answer = ANSWERS[outcome]
        code, trailers = grpc_code(body, **grpc_kwargs)
        response = http(body, {} if "metadata" in grpc_kwargs else auth)
        assert (code, response.status_code) == (answer.grpc, answer.http), outcome
        if outcome is not Outcome.STORED:
            assert status_pb2.Status.FromString(response.content).code == answer.code == code.value[0], outcome
        retry_infos = [v for k, v in trailers or () if k == RETRY_INFO_KEY]
        assert bool(retry_infos) == answer.retryable == ("Retry-After" in response.headers), outcome
        if retry_infos:
            assert error_details_pb2.RetryInfo.FromString(retry_infos[0]).retry_delay.seconds >= 1

    check(Outcome.STORED, good)
    check(Outcome.MALFORMED, b"\xff\xff\xff not protobuf")
    check(Outcome.TOO_LARGE, big)
    check(Outcome.UNAUTHENTICATED, good, metadata=(("authorization", "Bearer wrong"),))
    unsupported = httpx.post(http_url(collector), content=good, headers={"Content-Type": "text/plain", **auth})
    assert unsupported.status_code == ANSWERS[Outcome.UNSUPPORTED_MEDIA].http
    assert status_pb2.Status.FromString(unsupported.content).code == ANSWERS[Outcome.UNSUPPORTED_MEDIA].code

    def broken(*args: Any, **kwargs: Any) -> Any:  # a bug inside the collector, not the client's fault
        raise RuntimeError("a bug")

    monkeypatch.setattr(collector.pipeline, "store", broken)
    check(Outcome.INTERNAL, good)
    monkeypatch.undo()
    collector.pipeline.stop_accepting()  # shutting down: refused, retryably
    check(Outcome.OVERLOADED, request(*pair()).SerializeToString())


# ---- HTTP bodies are held in flight before they are kept -------------------------------------------


def _open(collector: Collector, headers: dict[str, str], first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", collector.http_port), timeout=20)
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": "127.0.0.1", **PROTOBUF, **headers}.items())
    sock.sendall(f"POST /v1/traces HTTP/1.1\r\n{head}\r\n".encode() + first)
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    return int(head.split()[1]), head


def _padded(size: int) -> bytes:
    """A valid request of about ``size`` bytes."""
    return request(span("padded", {"shadow.experiment": "e", "pad": "x" * size})).SerializeToString()


def test_an_http_body_is_held_in_flight_before_it_is_read(start_collector: Any) -> None:
    """Bodies used to be read whole before admission: 48 concurrent 60 MiB requests reached 6.3 GB
    against a 128 MiB limit. Now a declared length is held before a byte is read, and a request
    that would pass the limit is refused (503 + Retry-After) without reading its body."""
    collector = start_collector(max_inflight_bytes=1_000_000, decode_workers=0)
    body = _padded(600_000)
    first = _open(collector, {"Content-Length": str(len(body))}, body[:10])
    assert eventually(lambda: collector.pipeline.inflight_bytes == len(body))
    second = _open(collector, {"Content-Length": "600000"})  # nothing of its body is sent
    status, head = _answer(second)
    assert status == 503 and b"retry-after" in head.lower()
    second.close()
    first.sendall(body[10:])
    assert _answer(first)[0] == 200
    first.close()
    assert eventually(lambda: collector.pipeline.inflight_bytes == 0)
    assert query(collector, "SELECT count(*) FROM spans WHERE name = 'padded'") == [(1,)]


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_when_it_would_pass_the_limit(start_collector: Any) -> None:
    collector = start_collector(max_inflight_bytes=1_000_000, decode_workers=0)
    holder = _open(collector, {"Transfer-Encoding": "chunked"}, b"%x\r\n%s\r\n" % (400_000, b"x" * 400_000))
    assert eventually(lambda: collector.pipeline.inflight_bytes == 400_000)
    grower = _open(collector, {"Transfer-Encoding": "chunked"})
    for _ in range(10):  # 10 × 100 KB: passes the limit on the seventh chunk
        try:
            grower.sendall(b"%x\r\n%s\r\n" % (100_000, b"y" * 100_000))
        except OSError:
            break
    status, head = _answer(grower)
    assert status == 503 and b"retry-after" in head.lower()
    grower.close()
    assert eventually(lambda: collector.pipeline.inflight_bytes == 400_000)  # the refused one let go
    holder.close()  # a client that goes away mid-body lets go too
    assert eventually(lambda: collector.pipeline.inflight_bytes == 0)


def test_grpc_is_refused_before_decoding_when_http_bodies_fill_the_in_flight_limit(start_collector: Any) -> None:
    collector = start_collector(max_inflight_bytes=1_000_000, decode_workers=0)
    holder = _open(collector, {"Content-Length": "900000"}, b"x")
    assert eventually(lambda: collector.pipeline.inflight_bytes == 900_000)
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(
            collector, request(*[s for _ in range(20) for s in pair(primary_hash="h" * 10_000)]).SerializeToString()
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "capacity" in (info.value.details() or "")
    holder.close()
    assert eventually(lambda: collector.pipeline.inflight_bytes == 0)
    grpc_export(collector, request(*pair()).SerializeToString())
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(1,)]


def test_what_a_request_held_is_let_go_whatever_its_answer(start_collector: Any) -> None:
    import gzip

    collector = start_collector(max_request_bytes=64 * 1024, decode_workers=0)
    bomb = gzip.compress(b"\0" * 2**20)  # inflates past the request limit while it is read
    answers = [
        httpx.post(http_url(collector), content=request(*pair()).SerializeToString(), headers=PROTOBUF),
        httpx.post(http_url(collector), content=b"\x0a\xff\xff", headers=PROTOBUF),
        httpx.post(http_url(collector), content=b"{not json", headers={"Content-Type": "application/json"}),
        httpx.post(http_url(collector), content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}),
        httpx.post(
            http_url(collector),
            content=gzip.compress(b"x" * 1000)[:-8],
            headers={**PROTOBUF, "Content-Encoding": "gzip"},
        ),
    ]
    assert [a.status_code for a in answers] == [200, 400, 400, 413, 400]
    assert collector.pipeline.inflight_bytes == 0


def test_a_declared_length_over_the_request_limit_is_413_before_reading(start_collector: Any) -> None:
    collector = start_collector(max_request_bytes=64 * 1024)
    sock = _open(collector, {"Content-Length": str(10 * 2**20)})
    assert _answer(sock)[0] == 413
    sock.close()
    assert collector.pipeline.inflight_bytes == 0


# ---- the collector's own doors ---------------------------------------------------------------------


def test_metrics_needs_the_token_and_shows_no_messages_or_paths(start_collector: Any) -> None:
    collector = start_collector(token="s3cret")
    assert httpx.get(http_url(collector, "/metrics")).status_code == 401
    assert httpx.get(http_url(collector, "/metrics"), headers={"Authorization": "Bearer wrong"}).status_code == 401
    collector.pipeline.stats.last_commit_error = f"IO Error: could not write {collector.config.db}.wal"
    auth = {"Authorization": "Bearer s3cret"}
    snapshot = httpx.get(http_url(collector, "/metrics"), params={"format": "json"}, headers=auth).json()
    assert "spans_stored" in snapshot and all(v is None or isinstance(v, int | float | bool) for v in snapshot.values())
    text = httpx.get(http_url(collector, "/metrics"), headers=auth).text
    assert "otel_shadow_collector_spans_stored 0" in text
    assert str(collector.config.db) not in text + json.dumps(snapshot)


def test_a_token_header_that_is_not_ascii_is_401_not_a_crash(start_collector: Any) -> None:
    collector = start_collector(token="s3cret")
    headers = [(b"Content-Type", b"application/x-protobuf"), (b"Authorization", "Bearer sécret".encode("latin-1"))]
    answer = httpx.post(http_url(collector), content=request(*pair()).SerializeToString(), headers=headers)
    assert answer.status_code == 401


def test_listening_beyond_loopback_without_a_token_logs_a_warning(
    start_collector: Any, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_shadow.collector"):
        start_collector(host="0.0.0.0")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("0.0.0.0 with no token" in m and "--token" in m for m in warnings), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_shadow.collector"):
        start_collector(host="0.0.0.0", token="s3cret", db=str(tmp_path / "b.duckdb"))
        start_collector(db=str(tmp_path / "c.duckdb"))
    assert not [r for r in caplog.records if "no token" in r.getMessage()]
