"""A rules file is hostile input read inside the user's application: it can never hang, crash or
silence it. Bombs, huge, deep, non-UTF-8 and garbled files are refused in one short line naming the
file and the line; reloading runs on a background thread; a start-up error never escapes
``instrument()``, so ``opentelemetry-instrument`` goes on loading every other instrumentor."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from otel_shadow import ConfigError, Scheduler
from otel_shadow.instrumentation import OpenAIShadowInstrumentor, RulesSource, load_rules, parse_rules
from otel_shadow.instrumentation.rules import MAX_DEPTH, MAX_RULES_BYTES
from otel_shadow.store import Store

from .conftest import MESSAGES, by_role

GOOD = """\
rules:
  - name: chat-to-mini
    match: {provider: openai, model: gpt-4o}
    candidates:
      - model: gpt-4o-mini
"""

# the "billion laughs": 9 levels of 9 aliases, 9^9 strings once expanded
BOMB = (
    "a: &a ["
    + ",".join(['"lol"'] * 9)
    + "]\n"
    + "".join(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n" for prev, name in zip("abcdefg", "bcdefgh"))
    + "rules: ["
    + ",".join(["*h"] * 9)
    + "]\n"
)


def load_within(path: Path, seconds: float = 10.0) -> BaseException | None:
    """load_rules(path) on a thread; the error it raised. A load still running after `seconds` fails the test."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            load_rules(path)
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"loading {path.name} did not finish within {seconds} s"
    return outcome[0]


def test_a_yaml_bomb_is_refused_at_its_first_alias_in_one_short_line(tmp_path: Path) -> None:
    bomb = tmp_path / "shadow.yaml"
    bomb.write_text(BOMB)
    error = load_within(bomb)
    assert isinstance(error, ConfigError)
    message = str(error)
    assert message == f"{bomb}:2: YAML aliases (*a) are not allowed in a rules file; write the value out"
    assert error.__cause__ is None and error.__suppress_context__  # no chained yaml traceback


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"rules:\n  - name: caf\xe9\n", ":2: not UTF-8 (byte 0xe9 at offset 20); save the rules file as UTF-8"),
        (b"rules: " + b"[" * 5000 + b"]" * 5000 + b"\n", f":1: nested deeper than {MAX_DEPTH} levels"),
        (b"version: 1x\nrules: []\n", ":1: version: Input should be 1 (value '1x')"),
        (b"rules: [\n", ":2: not valid YAML"),
        (
            b"rules:\n  - name: r\n    sample_rate: '" + b"x" * 100_000 + b"'\n    candidates: [{model: m}]\n",
            ":3: rules[0].sample_rate: Input should be a valid number",
        ),
    ],
    ids=["not-utf8", "deep", "garbled-version", "truncated", "huge-value"],
)
def test_a_bad_file_is_one_short_line_with_file_and_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_bytes(content)
    error = load_within(path)
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"{path}{expected}")
    assert len(str(error)) < 400 and "\n" not in str(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "shadow.yaml"
    os.mkfifo(fifo)  # no writer: opening it for reading would wait forever
    for path in (fifo, Path("/dev/zero")):  # /dev/zero never ends
        error = load_within(path)
        assert isinstance(error, ConfigError) and str(error) == (
            f"rules file '{path}' is not a regular file; point at a YAML file"
        )


def test_a_file_over_the_byte_limit_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(GOOD + "#" * MAX_RULES_BYTES)
    with pytest.raises(ConfigError, match=rf"'{path}' is larger than {MAX_RULES_BYTES} bytes"):
        load_rules(path)
    with pytest.raises(ConfigError, match=f"limited to {MAX_RULES_BYTES} bytes"):
        parse_rules(GOOD + "#" * MAX_RULES_BYTES, "shadow.yaml")


def test_a_bad_file_at_start_up_is_logged_once_and_leaves_the_call_unshadowed(
    tmp_path: Path,
    provider: Any,
    spans: Any,
    scheduler: Scheduler,
    oai: openai.OpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bomb = tmp_path / "shadow.yaml"
    bomb.write_text(BOMB)
    instrumentor = OpenAIShadowInstrumentor()
    with caplog.at_level(logging.ERROR, logger="otel_shadow"):
        instrumentor.instrument(rules=str(bomb), tracer_provider=provider, scheduler=scheduler)  # does not raise
        second = OpenAIShadowInstrumentor()
        second.instrument(rules=str(bomb), tracer_provider=provider, scheduler=scheduler)
    try:
        answer = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content
    finally:
        instrumentor.uninstrument()
        second.uninstrument()
    lines = [r.getMessage() for r in caplog.records if r.name == "otel_shadow"]
    assert lines == [
        f"otel-shadow: shadowing is off: {bomb}:2: YAML aliases (*a) are not allowed in a rules file; "
        "write the value out (fix the rules file, then restart the application)"
    ]
    assert all(r.exc_info is None for r in caplog.records)
    assert by_role(spans) == {}


def test_reloading_runs_on_a_background_thread_and_a_bomb_never_reaches_the_callers(
    tmp_path: Path,
    provider: Any,
    spans: Any,
    scheduler: Scheduler,
    oai: openai.OpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(GOOD)
    source = RulesSource(path, check_interval_s=0.02)
    instrumentor = OpenAIShadowInstrumentor()
    instrumentor.instrument(rules=source, tracer_provider=provider, scheduler=scheduler)
    try:
        with caplog.at_level(logging.INFO, logger="otel_shadow"):
            path.write_text(GOOD.replace("gpt-4o-mini", "gpt-5-beta"))
            os.utime(path, (time.time() + 5, time.time() + 5))
            deadline = time.monotonic() + 10
            while source.rules.rules[0].candidates[0].model != "gpt-5-beta" and time.monotonic() < deadline:
                time.sleep(0.01)
            path.write_text(BOMB)
            os.utime(path, (time.time() + 10, time.time() + 10))
            while source.last_error is None and time.monotonic() < deadline:
                oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # the caller only reads the rules
            assert scheduler.flush(10)
    finally:
        instrumentor.uninstrument()
        source.close()
    assert source.last_error is not None and "YAML aliases" in source.last_error
    reloads = [
        r
        for r in caplog.records
        if "reloaded rules" in r.getMessage() or "keeping the last good rules" in r.getMessage()
    ]
    assert len(reloads) == 2
    assert {r.threadName for r in reloads} == {"otel-shadow-rules"}  # never the caller's thread
    assert {r.thread for r in reloads}.isdisjoint({threading.get_ident()})
    candidates = by_role(spans)["candidate"]
    assert candidates and {c.attributes["gen_ai.request.model"] for c in candidates} == {
        "gpt-5-beta"
    }  # the last good rules


def test_a_bad_rules_file_under_opentelemetry_instrument_logs_one_line_and_every_other_instrumentor_loads(
    tmp_path: Path, llm_server: Any
) -> None:
    # an instrumentation package of our own, loaded by OpenTelemetry after every instrumentor
    dist = tmp_path / "site" / "later_instrumentor-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: later-instrumentor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[opentelemetry_post_instrument]\nlater = later_instrumentor:run\n")
    (tmp_path / "site" / "later_instrumentor.py").write_text(
        "import os\ndef run():\n    os.environ['LATER_RAN'] = '1'\n"
    )
    (tmp_path / "shadow.yaml").write_text("rules:\n  - name: r\n    sample_rate: 7\n    candidates: [{model: m}]\n")
    (tmp_path / "app.py").write_text(
        "import os, openai\n"
        "client = openai.OpenAI(base_url=os.environ['LLM_URL'], api_key='k', max_retries=0)\n"
        "client.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': 'hi'}])\n"
        "print('app ran; later instrumentor ran:', os.environ.get('LATER_RAN'))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "OTEL_SHADOW_CONFIG": str(tmp_path / "shadow.yaml"),
        "OTEL_TRACES_EXPORTER": "duckdb",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SHADOW_DB": str(tmp_path / "traces.duckdb"),
        "LLM_URL": llm_server.openai_url,
    }
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    out = subprocess.run(
        [str(instrument), sys.executable, str(tmp_path / "app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "app ran; later instrumentor ran: 1"
    assert out.stderr.splitlines() == [
        f"otel-shadow: shadowing is off: {tmp_path / 'shadow.yaml'}:3: rules[0].sample_rate: Input should be less than "
        "or equal to 1 (value 7) (fix the rules file, then restart the application)"
    ]
    with Store.open(tmp_path / "traces.duckdb", read_only=True) as store:  # OpenTelemetry's own GenAI span is there
        assert store.query("SELECT count(*) FROM spans WHERE gen_ai_operation_name = 'chat'").rows == [(1,)]
        assert store.query("SELECT count(*) FROM shadow_runs").rows == [(0,)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_keeps_following_edits(tmp_path: Path) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(GOOD)
    source = RulesSource(path, check_interval_s=0.02)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the parent's watcher thread did not survive the fork
            code = 1
            try:
                path.write_text(GOOD.replace("gpt-4o-mini", "gpt-5-beta"))
                os.utime(path, (time.time() + 5, time.time() + 5))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if source.rules.rules[0].candidates[0].model == "gpt-5-beta":
                        code = 0
                        break
                    time.sleep(0.01)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        source.close()


def test_bad_rules_given_in_code_are_one_line_too_and_instrument_does_not_raise(
    provider: Any, scheduler: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor = OpenAIShadowInstrumentor()
    with caplog.at_level(logging.ERROR, logger="otel_shadow"):
        instrumentor.instrument(
            rules={"rules": [{"name": "no-candidates", "sample_rate": "often"}]},
            tracer_provider=provider,
            scheduler=scheduler,
        )
    instrumentor.uninstrument()
    assert [r.getMessage() for r in caplog.records] == [
        "otel-shadow: shadowing is off: instrument(rules=...): rules[0].candidates: Field required; "
        "instrument(rules=...): rules[0].sample_rate: Input should be a valid number, unable to parse string as a number "
        "(value 'often') (fix the rules file, then restart the application)"
    ]
