"""The CLI: sql formats, the report for pipelines, the demo, and one-line errors (no tracebacks)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from otel_shadow.store import Store, Writer

from .store.otlp import pair, request


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "otel_shadow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    spans = []
    for i in range(150):
        spans += pair(candidate_ms=30.0 if i % 2 else 11.0, candidate_hash="aa" if i % 3 else "bb")
    with Store.open(path) as store:
        Writer(store).write(request(*spans))
    return path


def test_sql_in_every_format(db: Path) -> None:
    query = "SELECT candidate_config_id, pairs FROM shadow_summary"
    table = run("sql", query, "--db", str(db))
    assert table.returncode == 0 and "candidate_config_id" in table.stdout and "150" in table.stdout
    rows = list(csv.reader(io.StringIO(run("sql", query, "--db", str(db), "--format", "csv").stdout)))
    assert rows == [["candidate_config_id", "pairs"], ["C", "150"]]
    assert json.loads(run("sql", query, "--db", str(db), "--format", "json").stdout) == [
        {"candidate_config_id": "C", "pairs": 150}
    ]


def test_db_from_the_environment(db: Path) -> None:
    out = run("sql", "SELECT count(*) AS n FROM shadow_pairs", "--format", "json", env={"OTEL_SHADOW_DB": str(db)})
    assert json.loads(out.stdout) == [{"n": 150}]


def test_report_json_for_pipelines_and_check_exit_code(db: Path) -> None:
    out = run("report", "--db", str(db), "--format", "json")
    report = json.loads(out.stdout)
    assert report["schema"] == "otel-shadow.report/2" and report["verdict"] == "FAIL"
    (candidate,) = report["candidates"]
    assert {"experiment", "candidate_config_id", "verdict", "reasons", "metrics", "gates"} <= set(candidate)
    assert candidate["verdict"] == "FAIL"  # half the candidates take 30 ms vs 10 ms
    assert candidate["metrics"]["pairs"] == 150
    assert run("report", "--db", str(db)).returncode == 0  # no exit code without --fail-on
    assert run("report", "--db", str(db), "--check").returncode == 1
    assert run("report", "--db", str(db), "--fail-on", "FAIL").returncode == 1
    assert run("report", "--db", str(db), "--check", "--max-p95-ratio", "5").returncode == 0
    page = run("report", "--db", str(db), "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>") and "FAIL" in page and "<script" not in page
    # 150 error-free pairs cannot yet show the error rate within +2 points: MARGINAL, not PASS
    assert run("report", "--db", str(db), "--fail-on", "MARGINAL", "--max-p95-ratio", "5").returncode == 1


def test_errors_are_one_line_without_traceback(tmp_path: Path, db: Path) -> None:
    missing = run("sql", "SELECT 1", "--db", str(tmp_path / "nope.duckdb"))
    assert missing.returncode == 2 and "does not exist yet" in missing.stderr
    notdb = tmp_path / "x.duckdb"
    notdb.write_text("nope" * 100)
    for result in (
        run("sql", "SELECT 1", "--db", str(notdb)),
        run("sql", "DELETE FROM spans", "--db", str(db)),
        run("sql", "SELEC oops", "--db", str(db)),
    ):
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    bad = tmp_path / "t.yaml"
    bad.write_text("max_p59_ratio: 2\n")
    out = run("report", "--db", str(db), "--thresholds", str(bad))
    assert out.returncode == 2 and "unknown threshold" in out.stderr


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    out = run("demo", "--db", str(db), "--requests", "120")
    assert out.returncode == 0, out.stderr
    assert "User sees:      [simulated] answer to 'Explain AI'" in out.stdout
    assert "verdict:" in out.stdout and "SIMULATED" in out.stdout
    with Store.open(db, read_only=True) as store:
        (pairs,) = store.query("SELECT count(*) FROM shadow_pairs WHERE candidate_role = 'candidate'").rows[0]
        (replicates,) = store.query("SELECT count(*) FROM shadow_pairs WHERE candidate_role = 'replicate'").rows[0]
        tokens = store.query(
            "SELECT count(*) FROM shadow_pairs WHERE candidate_output_tokens IS NULL AND candidate_outcome = 'ok'"
        ).rows
    assert pairs == 121 and 0 < replicates < 121 and tokens == [(0,)]  # a quarter of the calls have a replicate


def test_demo_through_the_instrumentation_and_the_local_model_server(tmp_path: Path) -> None:
    db = tmp_path / "llm.duckdb"
    out = run("demo", "--db", str(db), "--llm", "local", "--requests", "24")
    assert out.returncode == 0, out.stderr
    assert "Shadowing gpt-4o → gpt-5-beta through the local SIMULATED model server" in out.stdout
    assert "verdict:" in out.stdout
    with Store.open(db, read_only=True) as store:
        rows = store.query(
            "SELECT count(*), min(primary_model), min(candidate_model), count(*) FILTER (WHERE candidate_outcome = 'ok') "
            "FROM shadow_pairs"
        ).rows
    assert rows == [(24, "gpt-4o", "gpt-5-beta", 24)]
