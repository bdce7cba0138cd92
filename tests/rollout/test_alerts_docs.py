"""docs/alerts.md works as written: its files and commands run in order (demo, a webhook receiver,
the watch twice, the counter under opentelemetry-instrument), and the receiver gets one alert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from otel_shadow.store import Store

from ..test_docs import ROOT, doc_steps, free_port, script_of


def test_the_alerts_docs_commands_work_as_written_and_alert_once(tmp_path: Path) -> None:
    steps = doc_steps((ROOT / "docs" / "alerts.md").read_text())
    assert [c for k, c in steps if k == "bash" and "otel-shadow watch" in c]
    script = script_of(steps, free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{script}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    received = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(r["alert"]["kind"], r["alert"]["state"]) for r in received] == [("error_rate", "above")]
    assert "error rate 3.7% is above the alert line 2.0%" in out.stdout  # the figure the page quotes
    assert out.stdout.count('"name": "shadow.alerts"') == 1  # the counter, exported by OpenTelemetry's console exporter
    assert '"shadow.alert.kind": "error_rate"' in out.stdout and '"shadow.alert.state": "above"' in out.stdout
    with Store.open(tmp_path / "demo.duckdb", read_only=True) as store:
        rows = store.query("SELECT kind, state, webhook FROM shadow_alert_log").rows
    assert rows == [("error_rate", "above", "delivered")]
