"""From pairs to a decision: the paired statistics, the go/no-go gates, the verdict and the report.

The analysis reads the store only through its views (``shadow_pairs``, ``shadow_coverage``,
``shadow_noise_floor``), given as a query function, so it works the same on a local file, through
a running collector, or on another engine that has the same views. Rendering (text, JSON) is here
too: the CLI only calls it.
"""

from .gates import GATES, Evidence, Gate, GateInput, GateResult, Thresholds
from .html import render_html
from .render import render_json, render_text
from .report import SCHEMA, CandidateReport, Report, build_report

__all__ = [
    "GATES",
    "SCHEMA",
    "CandidateReport",
    "Evidence",
    "Gate",
    "GateInput",
    "GateResult",
    "Report",
    "Thresholds",
    "build_report",
    "render_html",
    "render_json",
    "render_text",
]
