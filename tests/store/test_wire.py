"""The attribute-as-bytes view of OTLP: same values as the official classes, errors kept, cache bounded."""

from __future__ import annotations

import json

import pytest
from google.protobuf.message import DecodeError

from otel_shadow.store import wire
from otel_shadow.store.rows import attributes_dict, request_to_rows

from .otlp import kvs, request, span

ATTRS = {
    "s": 'é \n "q" \u2028',
    "i": -(2**63),
    "f": 0.1,
    "b": False,
    "empty": "",
    "arr": [1, "x", [2.5]],
    "kv": {"k": {"deep": True}},
    "raw": b"\x00\xff",
}


def test_view_decodes_attributes_exactly_like_the_official_classes() -> None:
    message = request(
        span("op", ATTRS, links=[(b"\1" * 16, b"\2" * 8, {"shadow.link": "primary"})], events=[("e", ATTRS)])
    )
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


def test_the_cache_is_bounded_in_bytes_and_results_stay_right_when_it_is_cleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire, "CACHE_MAX_BYTES", 4096)
    wire.clear_cache()
    spans = [span("op", {"shadow.experiment": "e", "n": i, "s": f"v{i}"}) for i in range(40)]
    rows = request_to_rows(request(*spans))
    assert 0 < wire.cache_bytes() <= 4096
    bags = [json.loads(text) for text in rows.spans.column("attributes").to_pylist()]
    assert bags == [{"shadow.experiment": "e", "n": i, "s": f"v{i}"} for i in range(40)]


def test_large_attributes_are_never_cached_so_distinct_megabytes_do_not_accumulate() -> None:
    """Twenty requests with three distinct 1 MB attributes each once kept all 60 MB (and their
    decoded copies) alive; now nothing above CACHE_ENTRY_MAX_BYTES is kept."""
    wire.clear_cache()
    for r in range(20):
        big = {f"blob{k}": f"{r}-{k}-" + "x" * 1_000_000 for k in range(3)}
        rows = request_to_rows(request(span("op", {"shadow.experiment": "e", **big})))
        assert json.loads(rows.spans.column("attributes")[0].as_py())["blob2"].startswith(f"{r}-2-")
    assert wire.cache_bytes() < 64 * 1024
    assert all(len(raw) <= wire.CACHE_ENTRY_MAX_BYTES for raw in wire._cache)


def test_distinct_attributes_just_under_the_entry_limit_stay_within_the_byte_bound() -> None:
    wire.clear_cache()
    for r in range(60):  # 60 × 100 distinct 4 KB values: 24 MB of input, more than the cache may hold
        attrs = {f"k{k}": f"{r}-{k}-" + "y" * 3_900 for k in range(100)}
        request_to_rows(request(span("op", {"shadow.experiment": "e", **attrs})))
        assert wire.cache_bytes() <= wire.CACHE_MAX_BYTES
    held = sum(len(raw) + len(item[2]) for raw, item in wire._cache.items())
    assert held <= wire.cache_bytes() <= wire.CACHE_MAX_BYTES


def test_nan_and_infinities_are_stored_as_standard_json_strings() -> None:
    values = {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "arr": [1.5, float("nan")], "ok": 0.5}
    s = span("op", {"shadow.experiment": "e", **values})
    s.events.add(time_unix_nano=1, name="e").attributes.extend(kvs({"x": float("inf")}))
    rows = request_to_rows(request(s))
    text = rows.spans.column("attributes")[0].as_py()
    strict = json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert strict == {
        "shadow.experiment": "e",
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "arr": [1.5, "NaN"],
        "ok": 0.5,
    }
    assert json.loads(rows.events.column("attributes")[0].as_py()) == {"x": "Infinity"}
