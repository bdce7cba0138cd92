"""What the analysis reads from the store: per-arm counts and the paired latencies, through the views.

Everything goes through a query function (``sql -> (columns, rows)``), so the same analysis runs on
a local file, through a running collector, or on another engine with the same views. Counts are
aggregated in SQL; only the latencies of pairs where both sides succeeded come back one by one, as
one list per experiment × config (one row, not one row per pair: a million pairs cost one
list of floats, not a million tuples). The replicates' rows (role ``replicate``) are the noise
floor; ``shadow_noise_floor`` shows the same counts to people.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import attributes as A

__all__ = [
    "ARMS_SQL",
    "METRICS_SQL",
    "ArmData",
    "MetricStats",
    "NoiseFloor",
    "Query",
    "arms_sql",
    "read_arms",
    "read_coverage",
    "read_metrics",
    "read_scores",
]

Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]

_JUDGED = "primary_outcome <> 'cancelled' AND candidate_outcome <> 'cancelled'"
_BOTH_OK = (
    "primary_outcome = 'ok' AND candidate_outcome = 'ok' "
    "AND primary_duration_ms IS NOT NULL AND candidate_duration_ms IS NOT NULL"
)
_TOKENS = ("primary_input_tokens", "primary_output_tokens", "candidate_input_tokens", "candidate_output_tokens")
_TOKEN_ALIASES = ("pi", "po", "ci", "co")
_TOKENS_COMPLETE = " AND ".join(f"{t} IS NOT NULL" for t in _TOKENS)
# means and covariances of the four token counts over pairs that have all four: enough to judge
# any linear combination of them (total tokens, or cost at per-model prices) without per-pair rows
_COVARIANCES = ", ".join(
    f"covar_samp({a}, {b}) FILTER (WHERE {_TOKENS_COMPLETE}) AS cov_{x}_{y}"
    for i, (a, x) in enumerate(zip(_TOKENS, _TOKEN_ALIASES))
    for b, y in list(zip(_TOKENS, _TOKEN_ALIASES))[i:]
)

# One row per experiment × config × role ('candidate' or 'replicate'). Error counts leave out
# cancelled executions (cut short by shutdown or the user: no verdict on the config).
_ARMS_TEMPLATE = f"""
SELECT
    experiment,
    candidate_config_id,
    candidate_role,
    {{segment}}                                                                     AS segment,
    min(primary_config_id)                                                          AS primary_config_id,
    min(candidate_model)                                                            AS candidate_model,
    min(primary_model)                                                              AS primary_model,
    count(*)                                                                        AS pairs,
    count(*) FILTER (WHERE {_JUDGED})                                               AS judged,
    count(*) FILTER (WHERE {_JUDGED} AND candidate_outcome <> 'ok' AND primary_outcome = 'ok')  AS only_candidate_errors,
    count(*) FILTER (WHERE {_JUDGED} AND candidate_outcome = 'ok' AND primary_outcome <> 'ok')  AS only_primary_errors,
    count(*) FILTER (WHERE {_JUDGED} AND candidate_outcome <> 'ok' AND primary_outcome <> 'ok') AS both_errors,
    count(output_match)                                                             AS compared,
    count(*) FILTER (WHERE output_match)                                            AS matches,
    count(*) FILTER (WHERE {_TOKENS_COMPLETE})                                      AS token_pairs,
    {", ".join(f"avg({t}) FILTER (WHERE {_TOKENS_COMPLETE}) AS mean_{a}" for t, a in zip(_TOKENS, _TOKEN_ALIASES))},
    {_COVARIANCES},
    min(start_time)                                                                 AS first_pair_at,
    max(start_time)                                                                 AS last_pair_at,
    -- one list [p1, c1, p2, c2, …]: a pair's two durations stay side by side by construction
    flatten(list([primary_duration_ms, candidate_duration_ms]) FILTER (WHERE {_BOTH_OK}))        AS durations_ms
FROM {{source}}
GROUP BY ALL
ORDER BY experiment, candidate_config_id, candidate_role, segment NULLS FIRST
"""
ARMS_SQL = _ARMS_TEMPLATE.format(segment="CAST(NULL AS VARCHAR)", source="shadow_pairs")

# a segment is an attribute of the primary execution (shadow_runs.attributes), e.g. http.route
_SEGMENT_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


def arms_sql(segment_by: str | None = None) -> str:
    """ARMS_SQL, or the same per value of the primary execution's attribute ``segment_by``."""
    if segment_by is None:
        return ARMS_SQL
    if not _SEGMENT_KEY.match(segment_by):
        from ..errors import ConfigError

        raise ConfigError(
            f"segment attribute {segment_by!r} is not an attribute name: use letters, digits and . _ - : / "
            "(at most 128), e.g. http.route"
        )
    source = (
        "(SELECT p.*, r.attributes ->> '$.\"" + segment_by + "\"' AS segment_value FROM shadow_pairs p "
        "JOIN shadow_runs r ON r.trace_id = p.trace_id AND r.span_id = p.primary_span_id AND r.role = 'primary')"
    )
    return _ARMS_TEMPLATE.format(segment="coalesce(segment_value, '(none)')", source=source)


COVERAGE_SQL = "SELECT experiment, primary_runs, scheduled, dropped FROM shadow_coverage"


@dataclass(slots=True)
class ArmData:
    """One candidate (or replicate) config of one experiment against its primary."""

    experiment: str
    config_id: str
    role: str
    segment: str | None
    primary_config_id: str | None
    candidate_model: str | None
    primary_model: str | None
    pairs: int
    judged: int
    only_candidate_errors: int
    only_primary_errors: int
    both_errors: int
    compared: int
    matches: int
    token_pairs: int
    token_means: dict[str, float | None]
    token_cov: dict[tuple[str, str], float | None]
    first_pair_at: Any
    last_pair_at: Any
    primary_ms: np.ndarray = field(repr=False)
    candidate_ms: np.ndarray = field(repr=False)

    @property
    def primary_errors(self) -> int:
        return self.only_primary_errors + self.both_errors

    @property
    def candidate_errors(self) -> int:
        return self.only_candidate_errors + self.both_errors


@dataclass(frozen=True, slots=True)
class NoiseFloor:
    replicate_pairs: int
    compared: int
    matches: int


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, _dt.datetime | _dt.date) else value


def read_arms(query: Query, segment_by: str | None = None) -> list[ArmData]:
    columns, rows = query(arms_sql(segment_by))
    out = []
    for values in rows:
        r = dict(zip(columns, values))
        # a list, or a numpy array from the local store (no Python float per element); NULL: none ok
        durations = np.asarray([] if r["durations_ms"] is None else r["durations_ms"], dtype=float)
        out.append(
            ArmData(
                experiment=r["experiment"],
                config_id=r["candidate_config_id"],
                role=r["candidate_role"],
                segment=r["segment"],
                primary_config_id=r["primary_config_id"],
                candidate_model=r["candidate_model"],
                primary_model=r["primary_model"],
                pairs=int(r["pairs"]),
                judged=int(r["judged"]),
                only_candidate_errors=int(r["only_candidate_errors"]),
                only_primary_errors=int(r["only_primary_errors"]),
                both_errors=int(r["both_errors"]),
                compared=int(r["compared"]),
                matches=int(r["matches"]),
                token_pairs=int(r["token_pairs"]),
                token_means={a: r[f"mean_{a}"] for a in _TOKEN_ALIASES},
                token_cov={(x, y): r[f"cov_{x}_{y}"] for i, x in enumerate(_TOKEN_ALIASES) for y in _TOKEN_ALIASES[i:]},
                first_pair_at=_iso(r["first_pair_at"]),
                last_pair_at=_iso(r["last_pair_at"]),
                primary_ms=durations[0::2],
                candidate_ms=durations[1::2],
            )
        )
    return out


def read_coverage(query: Query) -> dict[str, tuple[int, int, int]]:
    _, rows = query(COVERAGE_SQL)
    return {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows}


@dataclass(frozen=True, slots=True)
class MetricStats:
    """One comparison metric (``shadow.metric.*``) over an arm's ok pairs: count, mean, variance."""

    n: int
    mean: float
    var: float


# One row per experiment × config × role × comparison metric (the edge's shadow.metric.* values).
# Read from the candidate and replicate spans themselves: the metrics need no pair join, and a
# text filter skips every span without one before its JSON is parsed.
_PREFIX = A.SHADOW_METRIC_PREFIX
METRICS_SQL = f"""
WITH runs AS (
    SELECT experiment, config_id, role, attributes
    FROM spans
    WHERE role IN ('candidate', 'replicate') AND outcome = 'ok'
      AND contains(CAST(attributes AS VARCHAR), '"{_PREFIX}')
    QUALIFY row_number() OVER (PARTITION BY trace_id, span_id) = 1  -- re-sent copies are identical
),
metric_values AS (
    SELECT r.experiment, r.config_id, r.role, k.key,
           CASE json_type(r.attributes, '$."' || k.key || '"')
                WHEN 'BOOLEAN' THEN CASE WHEN r.attributes ->> ('$."' || k.key || '"') = 'true' THEN 1.0 ELSE 0.0 END
                ELSE TRY_CAST(r.attributes ->> ('$."' || k.key || '"') AS DOUBLE)
           END AS value
    FROM runs r
    CROSS JOIN LATERAL (SELECT unnest(json_keys(r.attributes)) AS key) k
    WHERE k.key LIKE '{_PREFIX}%'
)
SELECT experiment, config_id AS candidate_config_id, role AS candidate_role, substr(key, {len(_PREFIX) + 1}) AS metric,
       count(value) AS n, avg(value) AS mean, coalesce(var_samp(value), 0.0) AS var
FROM metric_values
WHERE value IS NOT NULL
GROUP BY ALL
"""

MetricsByArm = dict[tuple[str, str, str], dict[str, MetricStats]]


def read_metrics(query: Query) -> MetricsByArm:
    """``(experiment, config id, role) → {metric: stats}``; empty for a store without the view."""
    from ..errors import StoreError

    try:
        columns, rows = query(METRICS_SQL)
    except StoreError:  # a store written before comparison metrics existed
        return {}
    out: MetricsByArm = {}
    for values in rows:
        r = dict(zip(columns, values))
        key = (r["experiment"], r["candidate_config_id"], r["candidate_role"])
        out.setdefault(key, {})[r["metric"]] = MetricStats(int(r["n"]), float(r["mean"]), float(r["var"]))
    return out


# One row per experiment × config × role × batch scorer (otel-shadow score): the judge's verdicts
# and the embedding similarity, as ``MetricStats`` plus the judge's win / tie / loss counts.
SCORES_SQL = """
SELECT experiment, candidate_config_id, candidate_role, scorer,
       count(score) AS n, avg(score) AS mean, coalesce(var_samp(score), 0.0) AS var,
       count(*) FILTER (WHERE label = 'win') AS wins,
       count(*) FILTER (WHERE label = 'tie') AS ties,
       count(*) FILTER (WHERE label = 'loss') AS losses
FROM shadow_scores
WHERE experiment IS NOT NULL
GROUP BY ALL
"""


@dataclass(frozen=True, slots=True)
class ScoreStats:
    """A batch scorer's results over an arm's pairs."""

    n: int
    mean: float
    var: float
    wins: int
    ties: int
    losses: int


def read_scores(query: Query) -> dict[tuple[str, str, str], dict[str, ScoreStats]]:
    """``(experiment, config id, role) → {scorer: stats}``; empty when nothing was scored."""
    from ..errors import StoreError

    try:
        columns, rows = query(SCORES_SQL)
    except StoreError:  # a store written before scores existed
        return {}
    out: dict[tuple[str, str, str], dict[str, ScoreStats]] = {}
    for values in rows:
        r = dict(zip(columns, values))
        key = (r["experiment"], r["candidate_config_id"], r["candidate_role"])
        out.setdefault(key, {})[r["scorer"]] = ScoreStats(
            int(r["n"]), float(r["mean"] or 0.0), float(r["var"]), int(r["wins"]), int(r["ties"]), int(r["losses"])
        )
    return out
