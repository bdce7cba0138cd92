"""Erase: one user's traces (by trace id or by an attribute) leave the store, and nothing else does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_shadow import attributes as A
from otel_shadow.cli import main
from otel_shadow.collector import Collector, CollectorConfig
from otel_shadow.errors import ConfigError
from otel_shadow.store import Store, Writer
from otel_shadow.store.erase import erase

from .otlp import request, span

TABLES = ("spans", "span_links", "span_events")


def user_trace(attrs: dict[str, Any] | None = None, service: str = "svc") -> tuple[str, Any]:
    """(hex trace id, request) of a primary, its candidate and a score span, as a user's call leaves them."""
    trace_id = os.urandom(16)
    common = {A.SHADOW_EXPERIMENT: "exp", A.SHADOW_OUTCOME: "ok", A.SHADOW_OUTPUT_HASH: "h", **(attrs or {})}
    primary = span("p", {**common, A.SHADOW_ROLE: "primary"}, trace_id=trace_id, events=[("first_chunk", {})])
    candidate = span(
        "c",
        {A.SHADOW_EXPERIMENT: "exp", A.SHADOW_ROLE: "candidate", A.SHADOW_OUTCOME: "ok"},
        trace_id=trace_id,
        parent=primary.span_id,
        links=[(trace_id, primary.span_id, {A.SHADOW_LINK: "primary"})],
    )
    score = span(
        "gen_ai.evaluation judge",
        {A.SHADOW_SCORE_SCORER_ID: "j"},
        trace_id=trace_id,
        parent=candidate.span_id,
        links=[(trace_id, primary.span_id, {A.SHADOW_LINK: "score.primary"})],
    )
    return trace_id.hex(), request(primary, candidate, score, service=service)


def snapshot(store: Store) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table (as text), to compare before and after."""
    return {
        table: {
            tuple(map(str, row))
            for row in store.query(f"SELECT hex_trace_id(trace_id), * EXCLUDE (trace_id) FROM {table}").rows
        }
        for table in TABLES
    }


def without(rows: dict[str, set[tuple[Any, ...]]], traces: set[str]) -> dict[str, set[tuple[Any, ...]]]:
    return {table: {r for r in found if r[0] not in traces} for table, found in rows.items()}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store.open(tmp_path / "s.duckdb") as s:
        yield s


def fill(store: Store, *traces: tuple[str, Any]) -> None:
    writer = Writer(store)
    for _, body in traces:
        writer.write(body)


def test_erasing_a_trace_id_removes_that_trace_and_nothing_else(store: Store) -> None:
    target, other = user_trace(), user_trace()
    fill(store, target, other)
    before = snapshot(store)
    report = erase(store, trace_id=target[0])
    assert snapshot(store) == without(before, {target[0]})
    assert (report.traces, report.spans, report.links, report.events) == ([target[0]], 3, 2, 1)
    assert store.query("SELECT count(*) FROM shadow_pairs").rows == [(1,)]
    assert store.query("SELECT count(*) FROM shadow_scores").rows == [(1,)]


def test_erasing_a_key_removes_every_trace_of_that_user_and_nothing_else(store: Store) -> None:
    alice = [user_trace({"enduser.id": "alice"}), user_trace({"enduser.id": "alice"})]
    bob = user_trace({"enduser.id": "bob"})
    alicia = user_trace({"enduser.id": "alice-2"})  # not a prefix match
    fill(store, *alice, bob, alicia)
    before = snapshot(store)
    report = erase(store, key="enduser.id=alice")
    assert sorted(report.traces) == sorted(t for t, _ in alice)
    assert snapshot(store) == without(before, {t for t, _ in alice})


def test_a_key_matches_numbers_and_resource_attributes_too(store: Store) -> None:
    numbered = user_trace({"app.user_id": 42})
    by_resource = user_trace(service="tenant-7")
    other = user_trace({"app.user_id": 43})
    fill(store, numbered, by_resource, other)
    assert erase(store, key="app.user_id=42").traces == [numbered[0]]
    assert erase(store, key="service.name=tenant-7").traces == [by_resource[0]]
    assert store.query("SELECT DISTINCT hex_trace_id(trace_id) FROM spans").rows == [(other[0],)]


def test_dry_run_shows_what_would_go_and_removes_nothing(store: Store) -> None:
    target = user_trace({"enduser.id": "carol"})
    fill(store, target)
    before = snapshot(store)
    report = erase(store, key="enduser.id=carol", dry_run=True)
    assert report.traces == [target[0]] and report.spans == 3 and report.dry_run
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"trace_id": "not-hex"}, "is not a trace id"),
        ({"trace_id": "0" * 32}, "is not a trace id"),
        ({"trace_id": "ab" * 17}, "is not a trace id"),
        ({"key": "enduser.id"}, "write ATTR=VALUE"),
        ({"key": "=alice"}, "write ATTR=VALUE"),
        ({"key": "enduser.id="}, "give the value"),
        ({"key": "a\"]') OR 1=1 --=x"}, "letters, digits"),
        ({"key": "k=" + "v" * 5000}, "longer than"),
        ({}, "exactly one of"),
        ({"trace_id": "ab" * 16, "key": "a=b"}, "exactly one of"),
    ],
)
def test_a_bad_selector_is_refused_clearly_and_nothing_is_removed(
    store: Store, selector: dict[str, Any], message: str
) -> None:
    fill(store, user_trace({"enduser.id": "x"}))
    before = snapshot(store)
    with pytest.raises(ConfigError, match=message):
        erase(store, **selector)
    assert snapshot(store) == before


def test_the_command_prints_what_it_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.duckdb"
    target = user_trace({"enduser.id": "dave"})
    with Store.open(db) as store:
        fill(store, target, user_trace())
    main(["erase", "--db", str(db), "--key", "enduser.id=dave"])
    out = capsys.readouterr().out
    assert "removed 1 traces (3 spans, 2 links, 1 events)" in out and target[0] in out
    main(["erase", "--db", str(db), "--key", "enduser.id=dave"])
    assert "no trace matches; nothing removed" in capsys.readouterr().out
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(3,)]


def test_the_command_is_refused_while_a_collector_holds_the_file(tmp_path: Path) -> None:
    db = str(tmp_path / "c.duckdb")
    collector = Collector(CollectorConfig(db=db, grpc_port=0, http_port=0, decode_workers=0, stats_interval_s=3600))
    collector.start()
    try:  # another process, as a user's shell would be
        out = subprocess.run(
            [sys.executable, "-m", "otel_shadow", "erase", "--db", db, "--trace-id", "ab" * 16],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        collector.stop(5)
    assert out.returncode == 2
    assert "held by a running collector" in out.stderr and "run erase, start it again" in out.stderr
