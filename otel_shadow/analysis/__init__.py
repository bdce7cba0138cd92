"""From pairs to a decision: the summary, the go/no-go gates, and the report.

The analysis reads the store only through its views (``shadow_summary``), given as a query
function, so it works the same on a local file, through a running collector, or on another engine
that has the same views.
"""

from .gates import GATES, Gate, GateResult, Thresholds
from .report import CandidateReport, Report, build_report

__all__ = ["GATES", "CandidateReport", "Gate", "GateResult", "Report", "Thresholds", "build_report"]
