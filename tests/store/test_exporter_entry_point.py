"""``OTEL_TRACES_EXPORTER=duckdb`` under ``opentelemetry-instrument``: the zero-code path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otel_shadow.store import Store

APP = """
from otel_shadow import Shadow, Config
shadow = Shadow(configs=[{"model": "a"}, {"model": "b"}])

@shadow.experiment(name="gen")
def generate(prompt: str, config: Config) -> str:
    return config["model"] + prompt

for i in range(20):
    generate(str(i))
shadow.flush(5)
"""


def test_opentelemetry_instrument_with_the_duckdb_exporter(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    db = tmp_path / "traces.duckdb"
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "duckdb",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SHADOW_DB": str(db),
        "OTEL_SERVICE_NAME": "zero-code-app",
    }
    out = subprocess.run(
        [str(instrument), sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT count(*), min(service_name) FROM shadow_runs WHERE role = 'primary'").rows == [
            (20, "zero-code-app")
        ]
        assert store.query("SELECT count(*) FROM shadow_pairs WHERE candidate_outcome = 'ok'").rows == [(20,)]
