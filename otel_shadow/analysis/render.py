"""The report for people (a rich table per candidate) and for pipelines (JSON)."""

from __future__ import annotations

import io
import json
from typing import Any

from .report import Report
from .verdict import intervals_note

__all__ = ["render_json", "render_text"]

_STYLE = {
    "PASS": "green",
    "MARGINAL": "yellow",
    "FAIL": "bold red",
    "INSUFFICIENT": "magenta",
    "INFO": "dim",
    "SKIP": "dim",
}
EMPTY = "No shadow pairs yet: run an experiment (otel-shadow demo) or send spans to the collector."


def render_json(report: Report) -> str:
    """``Report.to_dict()`` as JSON (the documented schema, see docs/report.md)."""
    return json.dumps(report.to_dict(), indent=2, default=str, allow_nan=False)


def render_text(report: Report, width: int = 120, color: bool = False) -> str:
    """One block per candidate: the verdict, then each gate's status and sentence."""
    if not report.candidates and not report.canary and not report.rollout and not report.ended:
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
    _ended(console, report)
    _canary(console, report)
    _rollout(console, report)
    console.print(intervals_note(report.thresholds), highlight=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


def _ended(console: Any, report: Report) -> None:
    """Experiments past a time limit: from when on no call was shadowed, and how many were not."""
    if not report.ended:
        return
    console.print("Ended (time limit reached: ends_at, max_duration or max_calls)", highlight=False)
    for e in report.ended:
        calls = "call" if e.expired_calls == 1 else "calls"
        console.print(
            f"  {e.experiment}: ended at {e.ended_at} UTC, {e.expired_calls:,} {calls} not shadowed since (expired)",
            highlight=False,
            markup=False,
        )


def _canary(console: Any, report: Report) -> None:
    """The canary cohorts, in a section of their own: their statistics are unpaired."""
    from rich.text import Text

    if not report.canary:
        return
    console.print(
        "Canary (UNPAIRED: users served the candidate vs the primary cohort, not the same requests)", highlight=False
    )
    for c in report.canary:
        m = c.metrics
        head = Text(f"  {c.experiment} · canary {c.canary_config_id} vs primary {c.primary_config_id}: ")
        head.append(c.verdict, style=_STYLE.get(c.verdict, ""))
        head.append(f"  ({m.get('canary_calls', 0):,} canary calls, {m.get('primary_calls', 0):,} primary calls)")
        console.print(head, highlight=False)
        for g in c.gates:
            line = Text("    " + g.status, style=_STYLE.get(g.status, ""))
            line.append(f" {g.name}: {g.reason}", style="")
            console.print(line, highlight=False)


def _rollout(console: Any, report: Report) -> None:
    if not report.rollout:
        return
    console.print("Rollout", highlight=False)
    for r in report.rollout:
        where = {"complete": "complete", "rolled_back": "ROLLED BACK"}.get(
            r.status, f"step {r.step + 1} of {r.steps or '?'}"
        )
        console.print(
            f"  rule {r.rule}: {where}, {r.phase} {r.fraction * 100:g}% since {r.since}"
            + (f" ({r.rules_file})" if r.rules_file else ""),
            highlight=False,
        )
        for move in r.history:
            on = (
                f" on {move.verdict}" + (f" ({move.pairs:,})" if move.pairs is not None else "") if move.verdict else ""
            )
            console.print(
                f"    {move.at}  {move.action:<8} -> {move.phase} {move.fraction * 100:g}%  by {move.actor}{on}"
                + (f": {move.reason}" if move.reason else ""),
                highlight=False,
            )
