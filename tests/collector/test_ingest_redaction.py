"""Redaction at ingest: content that another SDK sends unredacted is redacted by the collector,
with the app side's rules, before anything is written; bad rules files stop it before it listens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_shadow.collector import Collector, CollectorConfig
from otel_shadow.collector.decode import decode_payload
from otel_shadow.collector.redact import TRUNCATED, WITHHELD, IngestRedactor
from otel_shadow.core.content import render_content
from otel_shadow.errors import ConfigError
from otel_shadow.redaction import BUILTINS, load_redaction_rules, parse_redaction_rules

from ..store.otlp import request, span
from .test_otlp import query

RULES = """\
# redact.yaml
rules:
  - builtin: email
  - builtin: credit_card
  - pattern: 'CUST-[0-9]{6}'
    replace: '[customer]'
attributes:
  - app.user_prompt
"""
SECRET = "alice@example.com"


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "redact.yaml"
    path.write_text(RULES)
    return path


def send_with_the_sdk(collector: Collector, transport: str) -> None:
    """One LLM span as an SDK that does not redact would send it: content in attributes and events."""
    if transport == "grpc":
        exporter: Any = GrpcExporter(endpoint=f"127.0.0.1:{collector.grpc.port}", insecure=True)  # type: ignore[union-attr]
    else:
        exporter = HttpExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": "other-sdk"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"I am {SECRET}, card 4111 1111 1111 1111"}]}]
    with provider.get_tracer("other-sdk").start_as_current_span(
        "chat gpt-4o",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": json.dumps(messages),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Hi CUST-123456"}]}]
            ),
            "gen_ai.prompt.0.content": f"legacy prompt from {SECRET}",
            "llm.input_messages.0.message.content": f"openinference {SECRET}",
            "app.user_prompt": f"custom key {SECRET}",
            "gen_ai.tool.call.arguments": [f"to: {SECRET}", "cc: nobody"],
            "http.url": f"https://api.example.com/?user={SECRET}",  # not content: left as it is
        },
    ) as llm:
        llm.add_event("gen_ai.content.prompt", {"gen_ai.prompt": f"event prompt {SECRET}"})
        llm.add_event("gen_ai.user.message", {"content": f"event body {SECRET}", "role": "user"})
        llm.add_event("log", {"message": f"not content {SECRET}"})
    provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_content_sent_by_the_real_otlp_exporter_is_redacted_before_it_is_stored(
    start_collector: Callable[..., Collector], rules_file: Path, transport: str
) -> None:
    collector = start_collector(redact_rules=str(rules_file), decode_workers=0)
    send_with_the_sdk(collector, transport)
    [(text,)] = query(collector, "SELECT attributes FROM spans")
    attrs = json.loads(text)
    assert json.loads(attrs["gen_ai.input.messages"])[0]["parts"][0]["content"] == "I am [email], card [card]"
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"][0]["content"] == "Hi [customer]"
    assert attrs["gen_ai.prompt.0.content"] == "legacy prompt from [email]"
    assert attrs["llm.input_messages.0.message.content"] == "openinference [email]"
    assert attrs["app.user_prompt"] == "custom key [email]"  # a key the rules file adds
    assert attrs["gen_ai.tool.call.arguments"] == ["to: [email]", "cc: nobody"]  # inside arrays too
    assert attrs["http.url"] == f"https://api.example.com/?user={SECRET}"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    events = {name: json.loads(a) for name, a in query(collector, "SELECT name, attributes FROM span_events")}
    assert events["gen_ai.content.prompt"] == {"gen_ai.prompt": "event prompt [email]"}
    assert events["gen_ai.user.message"] == {"content": "event body [email]", "role": "user"}
    assert events["log"] == {"message": f"not content {SECRET}"}
    # the secret reached the store only where no rule applies to it
    assert text.count(SECRET) == 1  # the http.url above
    assert collector.redactor is not None and collector.redactor.stats.values_redacted >= 8


def test_the_app_side_applies_the_same_rules_file(rules_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"mail {SECRET} about CUST-654321"
    monkeypatch.setenv("OTEL_SHADOW_REDACT_RULES", str(rules_file))
    app_side = render_content(text, None)
    assert app_side == "mail [email] about [customer]"
    assert load_redaction_rules(rules_file)(text) == app_side
    assert render_content(text, lambda t: t.upper()) == text.upper()  # an explicit hook still wins


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_passes_the_checks_user_patterns_pass(name: str) -> None:
    assert parse_redaction_rules({"rules": [{"builtin": name}]}).rules[0].pattern.search("") is None


def test_the_builtins_find_what_they_name() -> None:
    rules = parse_redaction_rules(
        {"rules": [{"builtin": name} for name in ("email", "credit_card", "ipv4", "api_key", "phone")]}
    )
    text = "alice.b@mail.example.com. 4111-1111-1111-1111 from 10.0.0.12, sk-abcdefghijklmnopqrstu, +1 415 555 0100"
    assert rules(text) == "[email]. [card] from [ip], [secret], [phone]"


def test_an_unusable_rules_file_withholds_content_on_the_app_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - pattern: '(a+)+'\n")
    monkeypatch.setenv("OTEL_SHADOW_REDACT_RULES", str(bad))
    assert SECRET not in render_content(f"mail {SECRET}", None)  # never raises into the app, never leaks


BAD_FILES = {
    "nested repeat": ("rules:\n  - pattern: '(\\w+\\.)+com'\n", "repeat inside a repeat"),
    "invalid regex": ("rules:\n  - pattern: '(unclosed'\n", "not a valid regular expression"),
    "alternation in a repeat": ("rules:\n  - pattern: '(a|aa)+$'\n", "alternation inside a repeat"),
    "backreference": ("rules:\n  - pattern: '(a)\\1'\n", "backreferences"),
    "empty match": ("rules:\n  - pattern: 'x*'\n", "matches the empty string"),
    "unknown builtin": ("rules:\n  - builtin: passport\n", "unknown builtin 'passport'"),
    "not a mapping": ("- a\n- b\n", "holds a mapping"),
    "unknown key": ("rule:\n  - builtin: email\n", "unknown key 'rule'"),
    "alias bomb": ("a: &x [1, 2]\nb: [*x, *x]\n", "aliases"),
    "replacement not text": ("rules:\n  - pattern: 'x'\n    replace: [1]\n", "'replace' must be text"),
    "bad attribute key": ("attributes:\n  - 'a\"b'\n", "is not an attribute key"),
    "too many rules": ("rules:\n" + "  - builtin: email\n" * 101, "at most 100"),
    "not YAML": ("rules: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_rules_file_stops_the_collector_before_it_listens(tmp_path: Path, case: str) -> None:
    content, message = BAD_FILES[case]
    path = tmp_path / "redact.yaml"
    path.write_text(content)
    db = tmp_path / "c.duckdb"
    collector = Collector(
        CollectorConfig(db=str(db), grpc_port=0, http_port=0, decode_workers=0, redact_rules=str(path))
    )
    with pytest.raises(ConfigError, match=message) as error:
        collector.start()
    assert str(path) in str(error.value)
    assert not db.exists()  # nothing opened, nothing listening


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"rules:\n  - pattern: '\xff\xfe'\n"), "not UTF-8"),
        (lambda p: p.write_text("# " + "x" * (300 * 1024)), "larger than"),
        (lambda p: p.mkdir(), "cannot be read|not a regular file"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: None, "cannot be read"),
    ],
    ids=["not utf-8", "too large", "a directory", "a fifo", "missing"],
)
def test_a_rules_file_that_cannot_be_read_is_named_with_the_reason(tmp_path: Path, make: Any, message: str) -> None:
    path = tmp_path / "redact.yaml"
    make(path)
    with pytest.raises(ConfigError, match=message):
        load_redaction_rules(path)


def test_the_collector_command_names_the_bad_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "redact.yaml"
    path.write_text("rules:\n  - pattern: '(a|aa)+$'\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_shadow",
            "collector",
            "--db",
            str(tmp_path / "c.duckdb"),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--redact-rules",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert f"error: {path}: rule 1" in out.stderr and "Traceback" not in out.stderr


def test_hostile_content_is_bounded_and_never_stored_unredacted(rules_file: Path) -> None:
    huge = "9" * 500_000 + f" {SECRET}"  # the secret lies past the cut
    body = request(
        span("llm", {"gen_ai.operation.name": "chat", "gen_ai.input.messages": huge, "gen_ai.prompt": SECRET})
    )
    prepared = decode_payload(body.SerializeToString(), "protobuf", "test", True)
    redactor = IngestRedactor(load_redaction_rules(rules_file))
    attrs = json.loads(redactor(prepared).rows.spans.column("attributes")[0].as_py())
    assert attrs["gen_ai.input.messages"] == "9" * 16_384 + TRUNCATED
    assert attrs["gen_ai.prompt"] == "[email]"
    # past its time budget, a request's content is withheld, not stored as it came
    spent = IngestRedactor(load_redaction_rules(rules_file), budget_s=0.0)
    attrs = json.loads(spent(prepared).rows.spans.column("attributes")[0].as_py())
    assert attrs["gen_ai.input.messages"] == WITHHELD and attrs["gen_ai.prompt"] == WITHHELD
    assert spent.stats.values_withheld == 2
