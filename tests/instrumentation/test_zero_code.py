"""``OTEL_SHADOW_CONFIG=shadow.yaml opentelemetry-instrument python app.py``: no code change at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otel_shadow.store import Store

APP = """
import os, openai
client = openai.OpenAI(base_url=os.environ["LLM_URL"], api_key="k", max_retries=0)
for i in range(5):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"question {i}"}])
from otel_shadow.core.scheduler import default_scheduler
default_scheduler().flush(10)
"""

RULES = """
rules:
  - name: zero-code
    match: {provider: openai, model: gpt-4o}
    candidates:
      - model: gpt-4o-mini
"""


def run_app(tmp_path: Path, llm_server: object, **env: str) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "shadow.yaml").write_text(RULES)
    db = tmp_path / "traces.duckdb"
    full_env = {
        **os.environ,
        "OTEL_SHADOW_CONFIG": str(tmp_path / "shadow.yaml"),
        "OTEL_TRACES_EXPORTER": "duckdb",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SHADOW_DB": str(db),
        "LLM_URL": llm_server.openai_url,  # type: ignore[attr-defined]
        **env,
    }
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    out = subprocess.run(
        [str(instrument), sys.executable, str(tmp_path / "app.py")],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return db


def test_opentelemetry_instrument_with_a_rules_file(tmp_path: Path, llm_server: object) -> None:
    db = run_app(tmp_path, llm_server)
    with Store.open(db, read_only=True) as store:
        rows = store.query(
            "SELECT count(*), min(primary_model), min(candidate_model), min(candidate_outcome), min(candidate_output_tokens) > 0 FROM shadow_pairs"
        ).rows
    assert rows == [(5, "gpt-4o", "gpt-4o-mini", "ok", True)]


def test_the_entry_point_name_can_be_disabled(tmp_path: Path, llm_server: object) -> None:
    db = run_app(tmp_path, llm_server, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="shadow_openai")
    if db.exists():
        with Store.open(db, read_only=True) as store:
            assert store.query("SELECT count(*) FROM shadow_runs").rows == [(0,)]
