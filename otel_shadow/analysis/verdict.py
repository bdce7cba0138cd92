"""From evidence to a verdict: intervals at the family's levels, a status per gate, one verdict.

Rules (docs/report.md explains them with examples):

* Every gated interval is an anytime-valid confidence sequence, so the verdict may be read every
  hour without inflating false alarms. With ``inference: fixed`` it is a fixed-sample normal
  interval instead: narrower, and valid only for one read at a sample size chosen in advance.
* The gates of one candidate are one family: the levels come from Holm's procedure on each gate's
  anytime p-value of "beyond the limit", so a FAIL is a false alarm in at most alpha of
  experiments. PASS needs every gate within its limit, an intersection-union test, which needs no
  correction: each gate's interval at its own level already bounds it.
* FAIL when a gate's interval lies beyond its limit (whatever the number of pairs: a blatant
  failure on few pairs is a FAIL); otherwise INSUFFICIENT when some gate has too few observations
  or the candidate too few pairs; otherwise MARGINAL when an interval straddles its line; PASS
  when every interval lies within.
"""

from __future__ import annotations

import math

from .gates import Evidence, GateResult, Thresholds
from .stats import cs_half_width, cs_p_value, cs_rho2, fixed_half_width, fixed_p_value, holm_levels

__all__ = ["SEVERITY", "intervals_note", "judge", "judge_family", "verdict_of", "worth_promoting"]

# worst first: --fail-on and Report.worst read this order
SEVERITY = {"FAIL": 0, "MARGINAL": 1, "INSUFFICIENT": 2, "PASS": 3}


def intervals_note(t: Thresholds) -> str:
    """What the report's intervals are, in one sentence (the text and HTML reports end with it)."""
    level = f"{1 - t.alpha:.0%}"
    if t.inference == "fixed":
        return (
            f"Intervals: {level} fixed-sample intervals (inference: fixed), valid only when this report is read once, "
            "at a sample size chosen in advance; Holm-adjusted across each candidate's gates."
        )
    return (
        f"Intervals: {level} anytime-valid confidence sequences (valid however often you look), "
        "Holm-adjusted across each candidate's gates."
    )


def _show(scale: str, x: float) -> str:
    if scale == "log_ratio":
        return f"{math.expm1(x):+.0%}" if abs(math.expm1(x)) >= 0.1 else f"{math.expm1(x):+.1%}"
    if scale == "difference":
        return f"{x * 100:+.1f} pp"
    if scale == "rate":
        return f"{x:.1%}"
    return f"{x:+.3g}"


def _natural(scale: str, x: float) -> float:
    return math.exp(x) if scale == "log_ratio" else x


def _sentence(e: Evidence, lo: float, hi: float) -> str:
    text = f"{e.label} {_show(e.scale, e.estimate)} [{_show(e.scale, lo)}, {_show(e.scale, hi)}]"
    if e.limit is not None:
        text += f", limit {_show(e.scale, e.limit)}"
        if e.pass_limit is not None and e.pass_limit != e.limit:
            text += f" (PASS within {_show(e.scale, e.pass_limit)})"
    return f"{text} ({e.detail})" if e.detail else text


def _status(e: Evidence, lo: float, hi: float) -> str:
    assert e.limit is not None and e.pass_limit is not None
    if e.worse > 0:
        if lo > e.limit:
            return "FAIL"
        return "PASS" if hi <= e.pass_limit else "MARGINAL"
    if hi < e.limit:
        return "FAIL"
    return "PASS" if lo >= e.pass_limit else "MARGINAL"


def judge(findings: list[Evidence | GateResult], t: Thresholds) -> list[GateResult]:
    """Turn every gate's evidence into a GateResult with its interval, level and status."""
    return judge_family([findings], t)[0]


def judge_family(groups: list[list[Evidence | GateResult]], t: Thresholds) -> list[list[GateResult]]:
    """Judge several groups (the whole candidate and each segment) as one Holm family."""
    rho2 = cs_rho2(t.alpha, t.tuning_pairs)
    gated = [
        f
        for group in groups
        for f in group
        if isinstance(f, Evidence) and f.limit is not None and f.n >= f.min_n and math.isfinite(f.se)
    ]
    p_values = []
    for e in gated:
        assert e.limit is not None
        distance = (e.estimate - e.limit) * e.worse
        fixed = t.inference == "fixed"
        p_values.append(fixed_p_value(distance, e.se) if fixed else cs_p_value(distance, e.se, e.n, rho2))
    levels = dict(zip((id(e) for e in gated), holm_levels(p_values, t.alpha)))
    p_of = dict(zip((id(e) for e in gated), p_values))
    return [_results(group, levels, p_of, rho2, t) for group in groups]


def _results(
    findings: list[Evidence | GateResult], levels: dict[int, float], p_of: dict[int, float], rho2: float, t: Thresholds
) -> list[GateResult]:
    out = []
    for f in findings:
        if isinstance(f, GateResult):
            out.append(f)
            continue
        natural_limit = None if f.limit is None else _natural(f.scale, f.limit)
        natural_pass = None if f.pass_limit is None else _natural(f.scale, f.pass_limit)
        unit = {"log_ratio": "ratio"}.get(f.scale, f.scale)
        if f.n < f.min_n or not math.isfinite(f.se):
            reason = f"{f.label}: {f.n:,} observations, {f.min_n:,} needed for an interval ({f.detail})"
            status = "INSUFFICIENT" if f.limit is not None else "INFO"
            out.append(
                GateResult(
                    f.name,
                    status,
                    reason,
                    _natural(f.scale, f.estimate),
                    None,
                    natural_limit,
                    natural_pass,
                    None,
                    None,
                    f.n,
                    unit,
                    f.details,
                )
            )
            continue
        level = levels.get(id(f), t.alpha)
        if t.inference == "fixed":
            half = float(fixed_half_width(f.se, level))
        else:
            half = float(cs_half_width(f.se, f.n, level, rho2))
        lo, hi = f.estimate - half, f.estimate + half
        if f.scale in ("rate",):
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        if f.scale == "difference":
            lo, hi = max(lo, -1.0), min(hi, 1.0)
        status = _status(f, lo, hi) if f.limit is not None else "INFO"
        out.append(
            GateResult(
                name=f.name,
                status=status,
                reason=_sentence(f, lo, hi),
                estimate=_natural(f.scale, f.estimate),
                interval=(_natural(f.scale, lo), _natural(f.scale, hi)),
                limit=natural_limit,
                pass_limit=natural_pass,
                level=1 - level,
                p_value=p_of.get(id(f)),
                n=f.n,
                unit=unit,
                details=f.details,
            )
        )
    return out


def verdict_of(gates: list[GateResult]) -> str:
    statuses = {g.status for g in gates}
    for verdict in ("FAIL", "INSUFFICIENT", "MARGINAL"):
        if verdict in statuses:
            return verdict
    return "PASS"


def worth_promoting(verdict: str, gates: list[GateResult]) -> list[str]:
    """Sentences for a PASS that is also significantly better: faster, or cheaper, at equal quality."""
    if verdict != "PASS":
        return []
    better = []
    for g in gates:
        if g.interval is None:
            continue
        if g.name.startswith("latency_") and g.interval[1] < 1.0:
            better.append(f"faster: {g.reason}")
        if g.name == "cost" and g.interval[1] < 0.0:
            better.append(f"cheaper: {g.reason}")
    return better
