"""A short async script: when ``asyncio.run()`` returns, the last call's candidate is cancelled.

Cut short by shutdown, it is ``cancelled``: it counts as scheduled (coverage), never as an error,
so a healthy candidate does not FAIL the error-rate gate. ``await aflush()`` lets it finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.store import Store

APP = """
import asyncio, os, sys, openai
from otel_shadow.instrumentation import aflush

async def main():
    client = openai.AsyncOpenAI(base_url=os.environ["LLM_URL"], api_key="k", max_retries=0)
    for i in range(4):
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"question {i}"}])
        if i < 3:
            await aflush(10)  # this call's candidate finishes; the last one's is left running
    if sys.argv[1] == "aflush":
        await aflush(10)

asyncio.run(main())
"""

RULES = """
rules:
  - name: async-app
    match: {provider: openai, model: gpt-4o}
    candidates:
      - model: sim-shutdown
"""


def run(tmp_path: Path, llm_server: Any, ending: str) -> Path:
    llm_server.set_model("sim-shutdown", latency_ms=300)
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "shadow.yaml").write_text(RULES)
    db = tmp_path / f"{ending}.duckdb"
    env = {
        **os.environ,
        "OTEL_SHADOW_CONFIG": str(tmp_path / "shadow.yaml"),
        "OTEL_TRACES_EXPORTER": "duckdb",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SHADOW_DB": str(db),
        "LLM_URL": llm_server.openai_url,
    }
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    out = subprocess.run(
        [str(instrument), sys.executable, str(tmp_path / "app.py"), ending],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return db


def report(db: Path) -> dict[str, Any]:
    cli = Path(sys.executable).parent / "otel-shadow"
    out = subprocess.run(
        [str(cli), "report", "--db", str(db), "--format", "json", "--min-pairs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)["candidates"]
    return row  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("ending", "outcomes"), [("return", ["cancelled", "ok", "ok", "ok"]), ("aflush", ["ok", "ok", "ok", "ok"])]
)
def test_a_candidate_cut_short_by_asyncio_run_is_cancelled_and_not_an_error(
    tmp_path: Path, llm_server: Any, ending: str, outcomes: list[str]
) -> None:
    db = run(tmp_path, llm_server, ending)
    with Store.open(db, read_only=True) as store:
        assert sorted(r[0] for r in store.query("SELECT candidate_outcome FROM shadow_pairs").rows) == outcomes
        summary = store.query(
            "SELECT scheduled, dropped, coverage, candidate_error_rate, primary_error_rate FROM shadow_summary"
        ).rows
    assert summary == [(4, 0, 1.0, 0.0, 0.0)]  # the cancelled one counts in coverage, not in the error rate
    row = report(db)
    (gate,) = [g for g in row["gates"] if g["name"] == "error_rate"]
    assert gate["estimate"] == 0.0 and gate["status"] != "FAIL", gate  # 3 pairs: too few for a PASS interval
    assert "candidate 0.0% vs primary 0.0%" in gate["reason"], gate
    assert not [r for r in row["reasons"] if "error rate" in r]  # (the slower candidate may still fail on latency)
