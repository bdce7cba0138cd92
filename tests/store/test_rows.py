"""OTLP → rows: types kept, promoted columns filled, invalid spans rejected with a reason."""

from __future__ import annotations

import json

from otel_shadow.store.rows import request_to_rows

from .otlp import request, span


def test_attribute_types_survive_in_the_json_bag_and_promoted_columns() -> None:
    attrs = {
        "shadow.experiment": "e",
        "shadow.output.length": 42,
        "gen_ai.usage.input_tokens": 7,
        "ratio": 0.25,
        "flag": True,
        "tags": ["a", "b"],
        "nested": {"k": 1},
        "raw": b"\x01\x02",
    }
    rows = request_to_rows(request(span("op", attrs, events=[("ev", {"n": 1})])))
    columns = ("experiment", "output_length", "gen_ai_usage_input_tokens", "attributes", "service_name")
    row = {c: rows.spans.column(c)[0].as_py() for c in columns}
    assert row["experiment"] == "e" and row["output_length"] == 42 and row["gen_ai_usage_input_tokens"] == 7
    assert row["service_name"] == "svc"
    bag = json.loads(row["attributes"])
    assert bag == {**attrs, "raw": "0102"}
    assert isinstance(bag["shadow.output.length"], int)
    assert isinstance(bag["ratio"], float) and bag["flag"] is True
    assert rows.events.num_rows == 1 and json.loads(rows.events.column("attributes")[0].as_py()) == {"n": 1}


def test_wrongly_typed_promoted_values_become_null_but_stay_in_the_bag() -> None:
    rows = request_to_rows(request(span("op", {"shadow.experiment": "e", "gen_ai.usage.input_tokens": "many"})))
    assert rows.spans.column("gen_ai_usage_input_tokens")[0].as_py() is None
    assert json.loads(rows.spans.column("attributes")[0].as_py())["gen_ai.usage.input_tokens"] == "many"


def test_invalid_ids_are_rejected_with_a_reason_and_the_rest_kept() -> None:
    good = span("good")
    bad = span("bad", trace_id=b"short")
    zero = span("zero", trace_id=b"\0" * 16)
    rows = request_to_rows(request(good, bad, zero))
    assert rows.span_count == 1 and rows.rejected == 2
    assert "trace_id must be 16 non-zero bytes" in rows.errors[0]


def test_shadow_only_keeps_experiment_and_genai_spans() -> None:
    rows = request_to_rows(
        request(span("http"), span("exp", {"shadow.experiment": "e"}), span("llm", {"gen_ai.operation.name": "chat"})),
        shadow_only=True,
    )
    assert sorted(rows.spans.column("name").to_pylist()) == ["exp", "llm"]


def test_the_json_bag_is_what_json_dumps_makes() -> None:
    """The fast encoder (the C encoder called directly) writes the same text as json.dumps."""
    import json

    from otel_shadow.store.rows import _dumps

    value = {"text": 'é \n "quoted" \u2028', "n": [1, 2.5, True, None], "nested": {"k": "v"}}
    assert _dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
