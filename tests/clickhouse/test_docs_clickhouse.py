"""docs/clickhouse.md's example works as written: exporter-format spans in chdb, the views, a report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..test_docs import ROOT, doc_steps, free_port, script_of


def test_the_clickhouse_doc_runs_as_written(tmp_path: Path) -> None:
    script = script_of(doc_steps((ROOT / "docs" / "clickhouse.md").read_text()), free_port())
    assert "clickhouse-views --clickhouse chdb:chdata" in script and "report --clickhouse chdb:chdata" in script
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{script}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr
    assert "created view shadow_summary" in out.stdout
    assert "gpt-5-mini" in out.stdout and "300" in out.stdout  # the summary: 300 pairs of the candidate
    assert "verdict:" in out.stdout
