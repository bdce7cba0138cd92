"""Canary cohorts: users served the candidate's answer against users served the primary's, UNPAIRED.

A canary call (role ``canary``) answers a real user with the candidate's config; nobody ran the
primary on that same request, so there is no pair. The comparison is between two independent
samples over the same time window: the canary calls of one config, and the primary calls of the
same experiment that started at or after the first canary call (the cohort that did not get it).

When that window holds fewer primary calls than the verdict needs (``min_pairs``), the baseline is
filled up with the most recent primary calls of the same experiment from before the window, up to as
many as the canary cohort has (at least ``min_pairs``): no new primary call may ever come into the
window, so a baseline held at ``min_pairs`` would keep the interval as wide as that forever (MARGINAL
for good), while one as large as the canary narrows with it. At a canary step of 100% every caller with a key is in the canary, so with no keyless
caller the window has no primary call at all: without that baseline the step could never be judged.
It stays unpaired, and honest about it: the cohort's time range and how many of its calls came from
before the window are in the metrics, in the gates' findings and in a note of the report.

Two gates, read like the paired ones (``verdict.judge``: anytime-valid intervals, Holm across the
family, the same thresholds):

* ``canary_error_rate``: canary error rate − primary error rate; standard error from a parametric
  bootstrap of two independent binomials (half-count smoothed, so 0 errors still has a width).
* ``canary_latency_p95``: log(canary p95 / primary p95); standard error from a bootstrap that
  resamples each cohort on its own. A cohort above ``MAX_BOOTSTRAP_SAMPLE`` calls is bootstrapped on a
  random subsample of that size and its standard error scaled by sqrt(m/n) (a quantile is
  sqrt(n)-consistent), so the cost is bounded whatever the traffic.

Unpaired intervals are wider than paired ones at the same count: request-to-request variation is
not cancelled out. The report says so next to every canary verdict.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .data import Query
from .gates import Evidence, GateResult, Thresholds
from .verdict import judge, verdict_of

__all__ = [
    "CANARY_SQL",
    "MAX_BOOTSTRAP_SAMPLE",
    "CanaryCohorts",
    "CanaryReport",
    "bootstrap_log_quantile_ratio",
    "bootstrap_rate_difference",
    "build_canary_reports",
    "read_cohorts",
]

MAX_BOOTSTRAP_SAMPLE = 10_000  # calls per cohort resampled; above it a subsample, its se rescaled
RESAMPLES = 1000
_CHUNK = 50  # resamples drawn at once: memory stays at _CHUNK × MAX_BOOTSTRAP_SAMPLE floats
UNPAIRED_NOTE = (
    "unpaired: canary users vs the primary cohort, two independent samples (not the same requests), "
    "so the intervals are wider than the shadow pairs' at the same count"
)

# One row per experiment × canary config × cohort (``canary`` or ``primary``). The primary cohort
# is every primary call of the experiment from the first canary call on: the same time window.
_CANARY_TEMPLATE = """
WITH canary AS (
    SELECT experiment, config_id, min(start_time) AS since
    FROM shadow_runs
    WHERE role = 'canary'{since}
    GROUP BY ALL
)
SELECT
    c.experiment,
    c.config_id                                                             AS canary_config_id,
    r.role                                                                  AS cohort,
    min(r.config_id)                                                        AS cohort_config_id,
    count(*) FILTER (WHERE r.outcome <> 'cancelled')                        AS judged,
    count(*) FILTER (WHERE r.outcome NOT IN ('ok', 'cancelled'))            AS errors,
    list(r.duration_ms) FILTER (WHERE r.outcome = 'ok' AND r.duration_ms IS NOT NULL) AS durations_ms,
    min(r.start_time)                                                       AS first_at,
    max(r.start_time)                                                       AS last_at,
    epoch_us(c.since)                                                       AS since_us
FROM canary c
JOIN shadow_runs r ON r.experiment = c.experiment AND r.start_time >= c.since
WHERE (r.role = 'canary' AND r.config_id = c.config_id) OR r.role = 'primary'
GROUP BY ALL
ORDER BY c.experiment, c.config_id, r.role
"""
CANARY_SQL = _CANARY_TEMPLATE.format(since="")
# Whether any canary call exists: without one the cohorts' query would still de-duplicate every
# primary call of the store (its join's other side) to find nothing.
ANY_CANARY_SQL = "SELECT count(*) AS canary_calls FROM (SELECT 1 FROM shadow_runs WHERE role = 'canary' LIMIT 1) c"

# The most recent primary calls of one experiment before its canary window: the baseline's fill when
# the window has too few. Cancelled calls are not judged, so they do not take a place.
_BEFORE_TEMPLATE = """
SELECT
    min(config_id)                                                          AS cohort_config_id,
    count(*)                                                                AS judged,
    count(*) FILTER (WHERE outcome <> 'ok')                                 AS errors,
    list(duration_ms) FILTER (WHERE outcome = 'ok' AND duration_ms IS NOT NULL) AS durations_ms,
    min(start_time)                                                         AS first_at,
    max(start_time)                                                         AS last_at
FROM (
    SELECT config_id, outcome, duration_ms, start_time
    FROM shadow_runs
    WHERE experiment = {experiment} AND role = 'primary' AND outcome <> 'cancelled'
      AND start_time < make_timestamp({before_us})
    ORDER BY start_time DESC
    LIMIT {limit}
)
"""


@dataclass(frozen=True, slots=True)
class Cohort:
    config_id: str | None
    judged: int
    errors: int
    durations_ms: np.ndarray
    first_at: str | None
    last_at: str | None
    before_window: int = 0  # calls taken from before the canary window (the baseline's fill)
    in_window: int | None = None  # the window's own judged calls, when a fill was needed


@dataclass(frozen=True, slots=True)
class CanaryCohorts:
    """The two cohorts of one canary config of one experiment."""

    experiment: str
    canary_config_id: str
    canary: Cohort
    primary: Cohort
    since: str | None = None  # the first canary call: the window's start


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, _dt.datetime) else str(value)


def canary_sql(since_us: int | None = None) -> str:
    """The cohorts' query; with ``since_us`` (microseconds since the epoch, UTC) only calls from then on."""
    if since_us is None:
        return CANARY_SQL
    # the primary cohort starts at the first canary call in the window, so it is within it too
    return _CANARY_TEMPLATE.format(since=f" AND start_time >= make_timestamp({int(since_us)})")


def _cohort(r: dict[str, Any]) -> Cohort:
    return Cohort(
        r["cohort_config_id"],
        int(r["judged"] or 0),
        int(r["errors"] or 0),
        # sorted: DuckDB's list() order follows its parallel scan, and the bootstrap draws by position,
        # so unsorted the same store could give another interval (and verdict) from one run to the next
        np.sort(_floats(r["durations_ms"])),
        _iso(r["first_at"]),
        _iso(r["last_at"]),
    )


def _floats(values: Any) -> np.ndarray:
    """A list column's value (a list, a numpy array from the local store, or NULL) as floats."""
    return np.asarray([] if values is None else values, dtype=float)


def _literal(text: str) -> str:
    """A SQL string literal (DuckDB: a quote is doubled, nothing else is special)."""
    return "'" + text.replace("'", "''") + "'"


def _with_baseline(query: Query, experiment: str, window: Cohort, before_us: int, needed: int) -> Cohort:
    """``window`` filled up to ``needed`` judged calls with the experiment's latest primary calls before ``before_us``."""
    sql = _BEFORE_TEMPLATE.format(
        experiment=_literal(experiment), before_us=int(before_us), limit=needed - window.judged
    )
    columns, rows = query(sql)
    earlier = _cohort(dict(zip(columns, rows[0]))) if rows else None
    if earlier is None or earlier.judged == 0:
        return window
    return Cohort(
        window.config_id or earlier.config_id,
        window.judged + earlier.judged,
        window.errors + earlier.errors,
        np.sort(np.concatenate([earlier.durations_ms, window.durations_ms])),
        earlier.first_at,
        window.last_at or earlier.last_at,
        before_window=earlier.judged,
        in_window=window.judged,
    )


def read_cohorts(query: Query, since_us: int | None = None, min_primary: int = 0) -> list[CanaryCohorts]:
    """Every canary config with its cohort and the primary cohort of the same window.

    A primary cohort under ``min_primary`` judged calls is filled up to as many as the canary cohort
    has (at least ``min_primary``) with the most recent primary calls of the same experiment from
    before the window (see the module's doc).
    """
    _, any_canary = query(ANY_CANARY_SQL)
    if not any_canary or not any_canary[0][0]:
        return []
    columns, rows = query(canary_sql(since_us))
    found: dict[tuple[str, str], dict[str, Cohort]] = {}
    window_start: dict[tuple[str, str], int] = {}
    for row in rows:
        r = dict(zip(columns, row))
        key = (r["experiment"], r["canary_config_id"])
        found.setdefault(key, {})[r["cohort"]] = _cohort(r)
        window_start[key] = int(r["since_us"])
    empty = Cohort(None, 0, 0, np.zeros(0), None, None)
    out = []
    for (experiment, config), cohorts in found.items():
        canary, primary = cohorts.get("canary", empty), cohorts.get("primary", empty)
        if primary.judged < min_primary:
            needed = max(min_primary, canary.judged)
            primary = _with_baseline(query, experiment, primary, window_start[(experiment, config)], needed)
        out.append(CanaryCohorts(experiment, config, canary, primary, canary.first_at))
    return out


def bootstrap_rate_difference(
    x1: int, n1: int, x2: int, n2: int, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """x1/n1 − x2/n2 of two independent samples and its bootstrap standard error.

    Each sample is redrawn as a binomial at its half-count-smoothed rate, (x + 0.5)/(n + 1): the
    parametric bootstrap of a proportion, which keeps a width when a cohort has no error at all.
    """
    if n1 == 0 or n2 == 0:
        return (0.0, math.inf)
    rng = np.random.default_rng(seed)
    p1, p2 = (x1 + 0.5) / (n1 + 1), (x2 + 0.5) / (n2 + 1)
    diffs = rng.binomial(n1, p1, resamples) / n1 - rng.binomial(n2, p2, resamples) / n2
    return (x1 / n1 - x2 / n2, float(np.std(diffs, ddof=1)))


def _log_quantile_se(values: np.ndarray, q: float, resamples: int, rng: np.random.Generator) -> float:
    n = len(values)
    m = min(n, MAX_BOOTSTRAP_SAMPLE)
    sample = values if m == n else rng.choice(values, m, replace=False)
    logs = np.log(np.maximum(sample, 1e-9))
    rank = max(0, min(m - 1, math.ceil(q * m) - 1))  # the inverted-CDF q-quantile's rank, as np.quantile's
    out = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        k = min(_CHUNK, resamples - start)
        drawn = logs[rng.integers(0, m, size=(k, m))]
        out[start : start + k] = np.partition(drawn, rank, axis=1)[:, rank]  # O(m), no sort
    return float(np.std(out, ddof=1) * math.sqrt(m / n))


def bootstrap_log_quantile_ratio(
    canary: np.ndarray, primary: np.ndarray, q: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float, float]:
    """(canary q-quantile, primary q-quantile, log ratio, its standard error), independent samples.

    Each cohort is resampled on its own (nothing pairs a canary call with a primary one); the
    variance of the log ratio is the sum of the two cohorts' variances of the log quantile.
    """
    canary, primary = np.asarray(canary, dtype=float), np.asarray(primary, dtype=float)
    if len(canary) == 0 or len(primary) == 0:
        raise ValueError(f"both cohorts need latencies, got {len(canary)} canary and {len(primary)} primary")
    rng = np.random.default_rng(seed)
    qc = float(np.quantile(canary, q, method="inverted_cdf"))
    qp = float(np.quantile(primary, q, method="inverted_cdf"))
    se = math.hypot(_log_quantile_se(canary, q, resamples, rng), _log_quantile_se(primary, q, resamples, rng))
    return qc, qp, math.log(max(qc, 1e-9) / max(qp, 1e-9)), se


@dataclass(frozen=True, slots=True)
class CanaryReport:
    """The unpaired verdict on one canary config of one experiment."""

    experiment: str
    canary_config_id: str
    primary_config_id: str | None
    verdict: str
    reasons: list[str]
    metrics: dict[str, Any]
    gates: list[GateResult]
    notes: list[str] = field(default_factory=lambda: [UNPAIRED_NOTE])
    paired: bool = False  # always: these statistics are between cohorts

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["statistics"] = "unpaired"
        return out


_REASONS_FOR = {
    "FAIL": ("FAIL",),
    "INSUFFICIENT": ("INSUFFICIENT", "FAIL"),
    "MARGINAL": ("MARGINAL",),
    "PASS": ("PASS",),
}


def _evidence(c: CanaryCohorts, t: Thresholds, q: float = 0.95) -> tuple[list[Evidence | GateResult], dict[str, Any]]:
    can, pri = c.canary, c.primary
    min_n = max(t.min_pairs, 1)
    n = min(can.judged, pri.judged)
    metrics: dict[str, Any] = {
        "canary_calls": can.judged,
        "primary_calls": pri.judged,
        "canary_error_rate": can.errors / can.judged if can.judged else None,
        "primary_error_rate": pri.errors / pri.judged if pri.judged else None,
        "first_canary_at": can.first_at,
        "last_canary_at": can.last_at,
        "first_primary_at": pri.first_at,
        "last_primary_at": pri.last_at,
        "primary_before_window": pri.before_window,
    }
    # where the baseline comes from, in every finding that compares with it
    span = (
        f" (primary from {pri.first_at} to {pri.last_at}, {pri.before_window:,} of them before the window)"
        if pri.before_window
        else ""
    )
    findings: list[Evidence | GateResult] = []
    if can.judged and pri.judged:
        estimate, se = bootstrap_rate_difference(can.errors, can.judged, pri.errors, pri.judged)
        findings.append(
            Evidence(
                name="canary_error_rate",
                label="canary error rate (unpaired)",
                scale="difference",
                estimate=estimate,
                se=se,
                n=n,
                limit=t.max_error_rate_increase,
                pass_limit=t.max_error_rate_increase + t.error_rate_margin,
                worse=+1,
                min_n=min_n,
                detail=f"canary {metrics['canary_error_rate']:.1%} of {can.judged:,} vs primary "
                f"{metrics['primary_error_rate']:.1%} of {pri.judged:,} calls{span}",
            )
        )
    else:
        findings.append(
            GateResult(
                "canary_error_rate",
                "INSUFFICIENT",
                f"canary error rate: {can.judged:,} canary and {pri.judged:,} primary calls; both cohorts needed",
            )
        )
    nc, np_ = len(can.durations_ms), len(pri.durations_ms)
    if nc and np_:
        qc, qp, log_ratio, se = bootstrap_log_quantile_ratio(can.durations_ms, pri.durations_ms, q)
        metrics.update(canary_p95_ms=qc, primary_p95_ms=qp, p95_ratio=math.exp(log_ratio))
        findings.append(
            Evidence(
                name="canary_latency_p95",
                label="canary p95 latency (unpaired)",
                scale="log_ratio",
                estimate=log_ratio,
                se=se,
                n=min(nc, np_),
                limit=math.log(t.max_p95_ratio),
                pass_limit=math.log(t.max_p95_ratio * (1 + t.p95_margin)),
                worse=+1,
                min_n=min_n,
                detail=f"canary {qc:.0f} ms vs primary {qp:.0f} ms over {nc:,} and {np_:,} successful calls{span}",
                details={"canary_ms": qc, "primary_ms": qp},
            )
        )
    else:
        findings.append(
            GateResult(
                "canary_latency_p95", "INSUFFICIENT", "canary p95 latency: no successful call in one of the cohorts"
            )
        )
    return findings, metrics


def build_canary_reports(
    query: Query, thresholds: Thresholds | None = None, since_us: int | None = None
) -> list[CanaryReport]:
    """The unpaired verdict on every canary config in the store (or on its calls since ``since_us``)."""
    t = thresholds or Thresholds()
    out = []
    for cohorts in read_cohorts(query, since_us, min_primary=max(t.min_pairs, 1)):
        findings, metrics = _evidence(cohorts, t)
        gates = judge(findings, t)
        verdict = verdict_of(gates)
        notes = [UNPAIRED_NOTE]
        if cohorts.primary.before_window:
            notes.append(_baseline_note(cohorts, max(t.min_pairs, 1)))
        out.append(
            CanaryReport(
                experiment=cohorts.experiment,
                canary_config_id=cohorts.canary_config_id,
                primary_config_id=cohorts.primary.config_id,
                verdict=verdict,
                reasons=[g.reason for g in gates if g.status in _REASONS_FOR[verdict]],
                metrics=metrics,
                gates=gates,
                notes=notes,
            )
        )
    return out


def _baseline_note(c: CanaryCohorts, needed: int) -> str:
    p = c.primary
    return (
        f"baseline from before this step: the canary window (from {c.since}) had {p.in_window or 0:,} primary "
        f"call(s), {needed:,} needed, so the primary cohort is the {p.judged:,} most recent primary calls of "
        f"{c.experiment!r}, from {p.first_at} to {p.last_at} ({p.before_window:,} of them before the window); "
        "still unpaired, and a change between the two periods is not controlled for"
    )
