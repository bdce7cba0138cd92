"""The attribute-as-bytes view of OTLP: same values as the official classes, errors kept, cache bounded."""

from __future__ import annotations

import json

import pytest
from google.protobuf.message import DecodeError

from otel_shadow.store import wire
from otel_shadow.store.rows import attributes_dict, request_to_rows

from .otlp import kvs, request, span

ATTRS = {
    "s": "é \n \"q\" \u2028",
    "i": -(2**63),
    "f": 0.1,
    "b": False,
    "empty": "",
    "arr": [1, "x", [2.5]],
    "kv": {"k": {"deep": True}},
    "raw": b"\x00\xff",
}


def test_view_decodes_attributes_exactly_like_the_official_classes() -> None:
    message = request(span("op", ATTRS, links=[(b"\1" * 16, b"\2" * 8, {"shadow.link": "primary"})], events=[("e", ATTRS)]))
    official = message.resource_spans[0].scope_spans[0].spans[0]
    view = wire.parse_request(message.SerializeToString()).resource_spans[0].scope_spans[0].spans[0]
    for _ in range(2):  # decoded, then from the cache
        values, text = wire.decode_attributes(view.attributes)
        assert values == attributes_dict(official.attributes) == {**ATTRS, "raw": "00ff"}
        assert text == json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    assert wire.decode_attributes(view.events[0].attributes)[0] == values
    assert wire.decode_attributes(view.links[0].attributes)[0] == {"shadow.link": "primary"}
    assert (view.name, view.trace_id, view.kind) == (official.name, official.trace_id, official.kind)


def test_a_repeated_key_keeps_the_last_value_in_dict_and_json() -> None:
    s = span("op")
    s.attributes.extend(kvs({"k": 1}) + kvs({"k": "two"}))
    view = wire.parse_request(request(s).SerializeToString()).resource_spans[0].scope_spans[0].spans[0]
    values, text = wire.decode_attributes(view.attributes)
    assert values == {"k": "two"} and json.loads(text) == {"k": "two"} and text.count('"k"') == 1


def malformed_attribute_request() -> bytes:
    """A request whose only flaw is inside an attribute: a key that is not UTF-8."""
    view = wire.WireRequest()
    good = span("op", {"shadow.experiment": "e"})
    view.ParseFromString(request(good).SerializeToString())
    view.resource_spans[0].scope_spans[0].spans[0].attributes.append(b"\x0a\x02\xff\xfe")
    return view.SerializeToString()


def test_malformed_attribute_bytes_raise_like_a_malformed_request() -> None:
    with pytest.raises(DecodeError):
        request_to_rows(malformed_attribute_request())
    assert b"\x0a\x02\xff\xfe" not in wire._cache


def test_the_cache_is_bounded_and_results_stay_right_when_it_is_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_CACHE_LIMIT", 8)
    wire._cache.clear()
    spans = [span("op", {"shadow.experiment": "e", "n": i, "s": f"v{i}"}) for i in range(20)]
    rows = request_to_rows(request(*spans))
    assert len(wire._cache) <= 8
    bags = [json.loads(text) for text in rows.spans.column("attributes").to_pylist()]
    assert bags == [{"shadow.experiment": "e", "n": i, "s": f"v{i}"} for i in range(20)]
