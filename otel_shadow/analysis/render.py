"""The report for people (a rich table per candidate) and for pipelines (JSON)."""

from __future__ import annotations

import io
import json

from .report import Report
from .verdict import intervals_note

__all__ = ["render_json", "render_text"]

_STYLE = {"PASS": "green", "MARGINAL": "yellow", "FAIL": "bold red", "INSUFFICIENT": "magenta", "INFO": "dim", "SKIP": "dim"}
EMPTY = "No shadow pairs yet: run an experiment (otel-shadow demo) or send spans to the collector."


def render_json(report: Report) -> str:
    """``Report.to_dict()`` as JSON (the documented schema, see docs/report.md)."""
    return json.dumps(report.to_dict(), indent=2, default=str, allow_nan=False)


def render_text(report: Report, width: int = 120, color: bool = False) -> str:
    """One block per candidate: the verdict, then each gate's status and sentence."""
    if not report.candidates:
        return EMPTY
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system="standard" if color else None)
    for c in report.candidates:
        m = c.metrics
        console.print(
            f"{c.experiment} · candidate {c.candidate_config_id} ({m.get('candidate_model') or '?'}) "
            f"vs primary {c.primary_config_id} ({m.get('primary_model') or '?'})",
            highlight=False,
        )
        head = Text("  verdict: ")
        head.append(c.verdict, style=_STYLE.get(c.verdict, ""))
        if c.worth_promoting:
            head.append("  · worth promoting", style="bold green")
        console.print(head)
        table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False)
        table.add_column("status", no_wrap=True)
        table.add_column("gate", no_wrap=True)
        table.add_column("finding", overflow="fold")
        for g in c.gates:
            table.add_row(Text("  " + g.status, style=_STYLE.get(g.status, "")), g.name, g.reason)
        console.print(table)
        for seg in c.segments:
            line = Text(f"  segment {report.segment_by}={seg.segment}{' (critical)' if seg.critical else ''}: ")
            line.append(seg.verdict, style=_STYLE.get(seg.verdict, ""))
            line.append(f"  ({seg.pairs:,} pairs)")
            console.print(line)
            for reason in seg.reasons:
                console.print(f"    {reason}", highlight=False)
        for promote_line in c.promote:
            console.print(f"  promote: {promote_line}", highlight=False)
        for note in c.notes:
            console.print(f"  note: {note}", highlight=False)
        console.print(
            f"  pairs {m.get('pairs')}  exact match "
            + ("n/a" if m.get("exact_match_rate") is None else f"{m['exact_match_rate']:.1%}"),
            highlight=False,
        )
    console.print(intervals_note(report.thresholds), highlight=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())
