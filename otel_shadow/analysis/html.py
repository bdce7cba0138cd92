"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

It opens offline (no CDN, no network), from a file or an email attachment. Every text that comes
from the store (experiment names, config ids, segment values, reasons) is escaped: spans are
written by any client, so their strings are untrusted.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Sequence
from typing import Any

from .canary import CanaryReport
from .ended import EndedExperiment
from .gates import GateResult
from .report import CandidateReport, Report
from .rollout_state import RolloutState
from .timeline import TimelinePoint
from .verdict import intervals_note

__all__ = ["render_html"]

_COLOR = {
    "PASS": "#1a7f37",
    "MARGINAL": "#9a6700",
    "FAIL": "#cf222e",
    "INSUFFICIENT": "#8250df",
    "INFO": "#57606a",
    "SKIP": "#57606a",
}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2.5rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:600;font-size:.85rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0}td,th{border-bottom:1px solid #eaeef2;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{font-weight:600;color:#57606a;font-size:.8rem;text-transform:uppercase}.note{color:#57606a}.plots{display:flex;flex-wrap:wrap;gap:1.5rem}
figure{margin:0}figcaption{color:#57606a;font-size:.8rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _model(name: Any) -> str:
    return f" ({_e(name)})" if name else ""


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{_COLOR.get(status, "#57606a")}">{_e(status)}</span>'


def _interval_plot(c: CandidateReport) -> str:
    """One row per gate with an interval and a limit: the interval, the estimate, the FAIL and PASS lines.

    Each row has its own scale, so a gate without a limit (INFO) would be a bar filling its row and
    say nothing: those are in the table only. The interval's ends are written at the right.
    """
    rows = [
        g
        for g in c.gates
        if g.interval is not None
        and g.estimate is not None
        and any(v is not None and math.isfinite(v) for v in (g.limit, g.pass_limit))
    ]
    if not rows:
        return ""
    width, row_h, left, right = 640, 34, 150, 150
    height = row_h * len(rows) + 24
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="intervals against limits">']
    for i, g in enumerate(rows):
        assert g.interval is not None and g.estimate is not None
        points = [g.interval[0], g.interval[1], g.estimate] + [v for v in (g.limit, g.pass_limit) if v is not None]
        points = [v for v in points if math.isfinite(v)]
        lo, hi = min(points), max(points)
        pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad

        def x(v: float, lo: float = lo, hi: float = hi) -> float:
            return left + (v - lo) / (hi - lo) * (width - left - right)

        _interval_row(parts, g, 16 + i * row_h, _e(g.name), x, width - right + 10, left, width - right)
    parts.append("</svg>")
    return (
        "<figure>"
        + "".join(parts)
        + "<figcaption>each gate's interval (bar), estimate (dot), FAIL line (red dashes) and PASS line (green dashes)</figcaption></figure>"
    )


def _interval_row(parts: list[str], g: GateResult, y: int, label: str, x: Any, text_x: int, x0: int, x1: int) -> None:
    """One gate's interval drawn at height ``y``: label, axis, FAIL and PASS lines, bar, estimate."""
    assert g.interval is not None and g.estimate is not None
    color = _COLOR.get(g.status, "#57606a")
    parts.append(f'<text x="4" y="{y + 4}" font-size="12">{label}</text>')
    parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y}" y2="{y}" stroke="#eaeef2"/>')
    parts.append(
        f'<text x="{text_x}" y="{y + 4}" font-size="11" fill="#57606a">[{g.interval[0]:.3g}, {g.interval[1]:.3g}]</text>'
    )
    if g.limit is not None and math.isfinite(g.limit):
        parts.append(
            f'<line x1="{x(g.limit):.1f}" x2="{x(g.limit):.1f}" y1="{y - 10}" y2="{y + 10}" stroke="#cf222e" stroke-dasharray="3,2"><title>limit {g.limit:.4g}</title></line>'
        )
    if g.pass_limit is not None and g.pass_limit != g.limit and math.isfinite(g.pass_limit):
        parts.append(
            f'<line x1="{x(g.pass_limit):.1f}" x2="{x(g.pass_limit):.1f}" y1="{y - 10}" y2="{y + 10}" stroke="#1a7f37" stroke-dasharray="3,2"><title>PASS line {g.pass_limit:.4g}</title></line>'
        )
    parts.append(
        f'<line x1="{x(g.interval[0]):.1f}" x2="{x(g.interval[1]):.1f}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="4"/>'
    )
    parts.append(
        f'<circle cx="{x(g.estimate):.1f}" cy="{y}" r="5" fill="{color}"><title>{_e(g.status)}: {_e(g.reason)}</title></circle>'
    )


def _plotted(g: GateResult | None) -> bool:
    """A gate with an interval and a line to read it against (an INFO gate would say nothing here)."""
    return (
        g is not None
        and g.interval is not None
        and g.estimate is not None
        and all(math.isfinite(v) for v in (*g.interval, g.estimate))
        and any(v is not None and math.isfinite(v) for v in (g.limit, g.pass_limit))
    )


def _segment_plots(c: CandidateReport, segment_by: str | None) -> str:
    """Per gate, one row per segment (and the whole candidate on top) on one shared scale, so the
    segments' intervals can be read against the same FAIL and PASS lines and against each other."""
    if not c.segments:
        return ""
    names = [g.name for g in c.gates if _plotted(g)]
    names += [g.name for s in c.segments for g in s.gates if _plotted(g) and g.name not in names]
    figures = []
    width, row_h, left, right = 640, 26, 190, 130
    for name in dict.fromkeys(names):
        rows: list[tuple[str, GateResult]] = []
        overall = next((g for g in c.gates if g.name == name), None)
        if overall is not None and _plotted(overall):
            rows.append((f"all pairs · {overall.status}", overall))
        for s in c.segments:
            g = next((g for g in s.gates if g.name == name), None)
            if g is not None and _plotted(g):
                rows.append((f"{s.segment}{' (critical)' if s.critical else ''} · {g.status}", g))
        if not rows:
            continue
        points = [
            v
            for _, g in rows
            for v in (*(g.interval or ()), g.limit, g.pass_limit)
            if v is not None and math.isfinite(v)
        ]
        lo, hi = min(points), max(points)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad

        def x(v: float, lo: float = lo, hi: float = hi) -> float:
            return left + (v - lo) / (hi - lo) * (width - left - right)

        parts = [
            f'<svg width="{width}" height="{row_h * len(rows) + 12}" role="img" aria-label="{_e(name)} per segment">'
        ]
        for i, (label, g) in enumerate(rows):
            short = label if len(label) <= 30 else label[:29] + "…"
            _interval_row(parts, g, 14 + i * row_h, _e(short), x, width - right + 10, left, width - right)
        parts.append("</svg>")
        figures.append(
            f"<figure>{''.join(parts)}<figcaption>{_e(name)} per {_e(segment_by or 'segment')}: "
            "each segment's interval against the same FAIL (red) and PASS (green) lines</figcaption></figure>"
        )
    return f'<div class="plots">{"".join(figures)}</div>' if figures else ""


def _latency_plot(c: CandidateReport) -> str:
    """The two arms' latency quantile functions (successful pairs), on a log scale."""
    dist = next((g.details.get("distribution") for g in c.gates if g.name == "latency_p50" and g.details), None)
    if not dist:
        return ""
    width, height, left, bottom = 420, 240, 50, 30
    values = [v for v in dist["primary_ms"] + dist["candidate_ms"] if v > 0]
    if not values:
        return ""
    lo, hi = math.log(min(values)), math.log(max(values))
    span = (hi - lo) or 1.0

    def x(q: float) -> float:
        return left + q * (width - left - 10)

    def y(v: float) -> float:
        return height - bottom - (math.log(max(v, min(values))) - lo) / span * (height - bottom - 10)

    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="latency per arm">']
    for arm, color in (("primary_ms", "#0969da"), ("candidate_ms", "#bf3989")):
        path = " ".join(f"{x(q):.1f},{y(v):.1f}" for q, v in zip(dist["q"], dist[arm]))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">quantile 0 → 1</text>')
    parts.append(
        f'<text x="2" y="14" font-size="11">{math.exp(hi):.0f} ms</text><text x="2" y="{height - bottom}" font-size="11">{math.exp(lo):.0f} ms</text>'
    )
    parts.append(
        f'<text x="{width - 150}" y="{height - 8}" font-size="11" fill="#0969da">primary</text><text x="{width - 90}" y="{height - 8}" font-size="11" fill="#bf3989">candidate</text>'
    )
    parts.append("</svg>")
    return (
        "<figure>"
        + "".join(parts)
        + "<figcaption>latency quantiles per arm (pairs where both succeeded, log scale)</figcaption></figure>"
    )


def _elapsed(us: int) -> str:
    s = us / 1e6
    if s < 120:
        return f"+{s:.1f} s"
    if s < 7200:
        return f"+{s / 60:.0f} min"
    if s < 172800:
        return f"+{s / 3600:.1f} h"
    return f"+{s / 86400:.1f} d"


def _timeline_plot(c: CandidateReport, timeline: Sequence[TimelinePoint], inference: str = "anytime") -> str:
    """One cell per cut-off: the verdict on the pairs that had arrived by then, and how many."""
    if len(timeline) < 2:
        return ""
    key = (c.experiment, c.candidate_config_id)
    width, left, top, cell_h = 640, 150, 8, 24
    cell_w = (width - left - 20) / len(timeline)
    first = timeline[0].cutoff_us
    parts = [
        f'<svg width="{width}" height="{top + cell_h + 40}" role="img" aria-label="verdict over time">',
        f'<text x="4" y="{top + 16}" font-size="12">verdict over time</text>',
    ]
    for i, point in enumerate(timeline):
        verdict, pairs = point.verdicts.get(key, ("no pairs", 0))
        x = left + i * cell_w
        at = _dt.datetime.fromtimestamp(point.cutoff_us / 1e6, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top}" width="{cell_w - 2:.1f}" height="{cell_h}" rx="4" fill="{_COLOR.get(verdict, "#d0d7de")}">'
            f"<title>{_e(verdict)} on the {pairs:,} pairs started by {at}</title></rect>"
        )
        parts.append(
            f'<text x="{x + cell_w / 2:.1f}" y="{top + 16}" font-size="11" font-weight="600" fill="#fff" text-anchor="middle">{_e(verdict)}</text>'
        )
        parts.append(
            f'<text x="{x + cell_w / 2:.1f}" y="{top + cell_h + 15}" font-size="10" fill="#57606a" text-anchor="middle">{pairs:,} pairs</text>'
        )
        parts.append(
            f'<text x="{x + cell_w / 2:.1f}" y="{top + cell_h + 29}" font-size="10" fill="#57606a" text-anchor="middle">{_elapsed(point.cutoff_us - first)}</text>'
        )
    parts.append("</svg>")
    return (
        "<figure>"
        + "".join(parts)
        + "<figcaption>the verdict recomputed on the pairs that had arrived by each cut-off "
        + (
            "(time since the first pair; anytime-valid, so every look counts)"
            if inference == "anytime"
            else "(time since the first pair; inference: fixed, so only the pre-registered read counts, not the earlier cells)"
        )
        + "</figcaption></figure>"
    )


def _gate_table(gates: list[Any]) -> str:
    rows = "".join(f"<tr><td>{_badge(g.status)}</td><td>{_e(g.name)}</td><td>{_e(g.reason)}</td></tr>" for g in gates)
    return f"<table><tr><th>status</th><th>gate</th><th>finding</th></tr>{rows}</table>"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _canary_section(canaries: Sequence[CanaryReport]) -> str:
    """The canary cohorts in a section of their own, saying they are compared unpaired."""
    if not canaries:
        return ""
    parts = [
        '<h2 id="canary">Canary (unpaired)</h2>',
        '<p class="note">UNPAIRED: users served the candidate\'s answer against the primary cohort of the same '
        "window; two independent samples, not the same requests, so the intervals are wider than the shadow "
        "pairs' at the same count.</p>",
    ]
    for c in canaries:
        m = c.metrics
        parts.append(
            f'<h3 class="canary">{_e(c.experiment)} · canary {_e(c.canary_config_id)} vs primary '
            f"{_e(c.primary_config_id if c.primary_config_id is not None else '?')} {_badge(c.verdict)}</h3>"
        )
        parts.append(
            f"<p>{int(m.get('canary_calls') or 0):,} canary calls (error rate {_pct(m.get('canary_error_rate'))}), "
            f"{int(m.get('primary_calls') or 0):,} primary calls (error rate {_pct(m.get('primary_error_rate'))})"
            + (
                f", canary from {_e(m['first_canary_at'])} to {_e(m.get('last_canary_at'))}"
                if m.get("first_canary_at")
                else ""
            )
            + "</p>"
        )
        parts.append(_gate_table(c.gates))
        parts.extend(f'<p class="note">note: {_e(n)}</p>' for n in c.notes)
    return "".join(parts)


def _ended_section(ended: Sequence[EndedExperiment]) -> str:
    """Experiments past a time limit: when the first call went unshadowed, and how many did."""
    if not ended:
        return ""
    rows = "".join(
        f"<tr><td>{_e(e.experiment)}</td><td>{_e(e.ended_at)}</td><td>{e.expired_calls:,}</td></tr>" for e in ended
    )
    return (
        '<h2 id="ended">Ended (time limit reached)</h2>'
        '<p class="note">Past ends_at, max_duration or max_calls no candidate runs: these calls were not shadowed.</p>'
        f"<table><tr><th>experiment</th><th>ended at (UTC)</th><th>calls not shadowed (expired)</th></tr>{rows}</table>"
    )


def _where(r: RolloutState) -> str:
    if r.status == "complete":
        return "complete"
    if r.status == "rolled_back":
        return "ROLLED BACK"
    return f"step {r.step + 1} of {r.steps or '?'}"


def _rollout_section(states: Sequence[RolloutState]) -> str:
    """Each rule's plan now, then its moves oldest first: who or what moved it, when, on which verdict."""
    if not states:
        return ""
    parts = ['<h2 id="rollout">Rollout</h2>']
    for r in states:
        parts.append(
            f'<h3 class="rollout">rule {_e(r.rule)}: {_e(_where(r))}, {_e(r.phase)} {r.fraction * 100:g}% '
            f"since {_e(r.since)}</h3>" + (f'<p class="note">rules file {_e(r.rules_file)}</p>' if r.rules_file else "")
        )
        rows = "".join(
            f"<tr><td>{_e(m.at)}</td><td>{_e(m.action)}</td><td>{_e(m.phase)} {m.fraction * 100:g}% "
            f"(step {m.step + 1})</td><td>{_e(m.actor)}</td>"
            f"<td>{_badge(m.verdict) if m.verdict else '—'}"
            f"{f' on {m.pairs:,}' if m.verdict and m.pairs is not None else ''}</td>"
            f"<td>{_e(m.reason or '')}</td></tr>"
            for m in r.history
        )
        parts.append(
            "<table><tr><th>when (UTC)</th><th>move</th><th>to</th><th>by</th><th>verdict</th><th>why</th></tr>"
            f"{rows}</table>"
        )
    return "".join(parts)


def render_html(report: Report, timeline: Sequence[TimelinePoint] = ()) -> str:
    """The whole report as one HTML document (no external resource of any kind).

    ``timeline``: ``verdict_timeline(...)`` of the same report, drawn as each candidate's verdict over time.
    """
    body = [f"<h1>otel-shadow report {_badge(report.worst) if report.worst else ''}</h1>"]
    if not report.candidates and not report.canary and not report.rollout and not report.ended:
        body.append("<p>No shadow pairs yet: run an experiment (otel-shadow demo) or send spans to the collector.</p>")
    for c in report.candidates:
        m = c.metrics
        body.append(
            f"<h2>{_e(c.experiment)} · candidate {_e(c.candidate_config_id)}{_model(m.get('candidate_model'))} "
            f"vs primary {_e(c.primary_config_id)}{_model(m.get('primary_model'))} {_badge(c.verdict)}</h2>"
        )
        if c.worth_promoting:
            body.append("<p><strong>Worth promoting:</strong> " + "; ".join(_e(p) for p in c.promote) + "</p>")
        body.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in c.reasons) + "</ul>")
        body.append(
            f'<div class="plots">{_timeline_plot(c, timeline, report.thresholds.inference)}{_interval_plot(c)}{_latency_plot(c)}</div>'
        )
        body.append(_gate_table(c.gates))
        if c.segments:
            rows = "".join(
                f"<tr><td>{_e(s.segment)}{' (critical)' if s.critical else ''}</td><td>{_badge(s.verdict)}</td>"
                f"<td>{s.pairs:,}</td><td>{'<br>'.join(_e(r) for r in s.reasons)}</td></tr>"
                for s in c.segments
            )
            body.append(f"<h3>Per {_e(report.segment_by)}</h3>{_segment_plots(c, report.segment_by)}")
            body.append(f"<table><tr><th>segment</th><th>verdict</th><th>pairs</th><th>why</th></tr>{rows}</table>")
        body.extend(f'<p class="note">note: {_e(n)}</p>' for n in c.notes)
    body.append(_ended_section(report.ended))
    body.append(_canary_section(report.canary))
    body.append(_rollout_section(report.rollout))
    body.append(f'<p class="note">{_e(intervals_note(report.thresholds))} See docs/report.md.</p>')
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>otel-shadow report: {_e(report.worst or 'no pairs')}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
