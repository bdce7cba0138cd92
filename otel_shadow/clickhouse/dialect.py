"""The one place where ClickHouse SQL differs from DuckDB's for what otel-shadow sends.

The views are written once per dialect (``otel_shadow/store/views.sql`` for DuckDB,
``views.sql`` beside this module for ClickHouse). The analysis (``otel_shadow.analysis``) sends
its own SQL through a query function and must run unchanged; most of it is already portable
(aggregate ``FILTER``, ``GROUP BY ALL``, ``NULLS FIRST``, ``flatten`` and array literals mean the
same in both engines). What differs is listed here, and nowhere else:

============================  ======================================  ==============================
DuckDB                        ClickHouse                              why
============================  ======================================  ==============================
``list(x)`` (aggregate)       ``groupArray(x)``                       no ``list`` aggregate
``var_samp(x)``               ``if(count(x) > 1, varSamp(x), NULL)``  ClickHouse answers nan below
``covar_samp(a, b) FILTER``   same, ``NULL`` below two rows           two values, SQL says NULL
``attrs ->> '$."key"'``       ``attrs['key']`` when present, else     attributes are a Map, not JSON
                              ``NULL``
``epoch_us(t)``               ``toUnixTimestamp64Micro(t)``           epoch conversion
``epoch_ns(t)``               ``toUnixTimestamp64Nano(t)``            (``otel-shadow score``'s pages)
``make_timestamp(us)``        ``fromUnixTimestamp64Micro(us)``
``CAST(NULL AS VARCHAR)``     setting ``cast_keep_nullable = 1``      String is not nullable
LEFT JOIN misses              setting ``join_use_nulls = 1``          NULL, not the type's default
the comparison-metrics query  its ClickHouse statement                it reads the DuckDB store's
(``METRICS_SQL``)             (``_METRICS_SQL`` below)                internal table, with JSON
the ended-experiments query   its statement over otel_shadow_spans    the attribute keys first: the
(``ENDED_SQL``)               (``_ENDED_SQL`` below)                  values' of primaries without
                                                                      drop reasons are never read
``otel-shadow score``'s       ``otel_shadow.scoring.pairs``'s         ids are hex strings; content
pairs: ids, content           ``clickhouse_pairs``                    is in otel_traces' arrays
a select item ``c.col`` on    ``c.col AS col``                        ClickHouse names the column
its own line, unnamed                                                 ``c.col``, DuckDB ``col``
``FROM canary c JOIN          ``FROM shadow_runs r JOIN canary c``    a join's hash table is built
shadow_runs r`` (the canary   (the same inner join)                   from its right side; an empty
cohorts' query)                                                       one ends it unread (no canary)
============================  ======================================  ==============================

A rewrite applies to the SQL outside string literals and quoted names only.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .. import attributes as A

__all__ = ["SESSION_SETTINGS", "code_only", "translate"]

# Settings of every read connection, besides the read-only and limit settings (connection.py):
# they give ClickHouse SQL's NULL semantics where DuckDB's views and the analysis rely on them.
SESSION_SETTINGS: dict[str, int] = {
    "join_use_nulls": 1,  # an outer join's missing side is NULL, not 0 or ''
    "cast_keep_nullable": 1,  # CAST(NULL AS VARCHAR) is NULL, not an error
    # attributes['key'] is then a lookup in the map as read, not a subcolumn of its own: read once
    # per query whatever the number of keys (more than twice less CPU for the views' ten keys)
    "optimize_functions_to_subcolumns": 0,
    # a WHERE's conditions are read in the order written: the views test the attribute keys first
    # (cheap, no values read) and read the values only of the spans that pass
    "allow_reorder_prewhere_conditions": 0,
    # a join builds its hash table from the side written on the right (the smaller one in the views);
    # the planner's estimates over views are guesses, and a swapped join built it from the largest
    "query_plan_join_swap_table": 0,
}

_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
_REWRITES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"\blist\s*\(", re.IGNORECASE), "groupArray("),
    (re.compile(rf"\bvar_samp\s*\(\s*({_WORD})\s*\)", re.IGNORECASE), r"if(count(\1) > 1, varSamp(\1), NULL)"),
    (
        re.compile(
            rf"\bcovar_samp\s*\(\s*({_WORD})\s*,\s*({_WORD})\s*\)\s*FILTER\s*\(\s*WHERE\s+([^()]*)\)", re.IGNORECASE
        ),
        r"if(countIf(\1 IS NOT NULL AND \2 IS NOT NULL AND (\3)) > 1, covarSampIf(\1, \2, \3), NULL)",
    ),
    (re.compile(r"\bepoch_us\s*\(", re.IGNORECASE), "toUnixTimestamp64Micro("),
    (re.compile(r"\bepoch_ns\s*\(", re.IGNORECASE), "toUnixTimestamp64Nano("),
    (re.compile(r"\bmake_timestamp\s*\(", re.IGNORECASE), "fromUnixTimestamp64Micro("),
    (re.compile(r"^([ \t]*)([A-Za-z_]\w*)\.([A-Za-z_]\w*)[ \t]*(,?)[ \t]*$", re.MULTILINE), r"\1\2.\3 AS \3\4"),
    # the canary cohorts' join (otel_shadow.analysis.canary): ClickHouse reads the right side into a
    # hash table first (SESSION_SETTINGS keep the written order), so the small side goes right, and
    # a store without canary runs never reads its primaries (over 1M pairs: 2.2 -> 0.2 s of CPU)
    (
        re.compile(r"\bFROM\s+canary\s+c\s+JOIN\s+shadow_runs\s+r\s+ON\b", re.IGNORECASE),
        "FROM shadow_runs r JOIN canary c ON",
    ),
)
# attrs ->> '$."key"' (the key is inside the literal, so this one is matched on the whole text)
_JSON_ATTRIBUTE = re.compile(rf"((?:{_WORD}\.)?{_WORD})\s*->>\s*'\$\.\"([^\"'\\]+)\"'")
# string literals and quoted names, which no rewrite may touch, and comments, which are dropped
_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`|--[^\n]*|/\*.*?\*/", re.DOTALL)


def _attribute(match: re.Match[str]) -> str:
    column, key = match.group(1), match.group(2)
    return f"if(mapContains({column}, '{key}'), {column}['{key}'], NULL)"


def translate(sql: str) -> str:
    """``sql`` as ClickHouse runs it: DuckDB-only constructs of the table above rewritten."""
    from ..analysis.data import METRICS_SQL  # the statements replaced whole
    from ..analysis.ended import ENDED_SQL

    if sql.strip() == METRICS_SQL.strip():
        return _METRICS_SQL
    if sql.strip() == ENDED_SQL.strip():
        return _ENDED_SQL
    sql = _JSON_ATTRIBUTE.sub(_attribute, sql)
    return "".join(_rewrite(part) if kind == "code" else part for kind, part in _parts(sql))


def code_only(sql: str) -> str:
    """``sql`` without comments, each literal and quoted name replaced by ``''`` (to look at its keywords)."""
    return "".join(part if kind == "code" else "''" for kind, part in _parts(sql))


def _parts(sql: str) -> list[tuple[str, str]]:
    """``sql`` split into code and quoted parts; comments become a space."""
    out, last = [], 0
    for quoted in _QUOTED.finditer(sql):
        out.append(("code", sql[last : quoted.start()]))
        token = quoted.group(0)
        out.append(("code", " ") if token.startswith(("--", "/*")) else ("quoted", token))
        last = quoted.end()
    out.append(("code", sql[last:]))
    return out


def _rewrite(code: str) -> str:
    for pattern, replacement in _REWRITES:
        code = pattern.sub(replacement, code)
    return code


# The analysis's comparison-metrics statement (otel_shadow.analysis.data.METRICS_SQL) reads the
# DuckDB store's spans table and its JSON. Here: the same rows from the exporter's spans (the span's
# own shadow.outcome, re-sent copies once); booleans are 'true' / 'false' in the exporter.
_METRICS_SQL = f"""
SELECT experiment, config_id AS candidate_config_id, role AS candidate_role, substring(key, {len(A.SHADOW_METRIC_PREFIX) + 1}) AS metric,
       count(value) AS n, avg(value) AS mean, if(count(value) > 1, varSamp(value), 0.0) AS var
FROM (
    SELECT experiment, config_id, role, key,
           multiIf(attributes[key] = 'true', 1.0, attributes[key] = 'false', 0.0, toFloat64OrNull(attributes[key])) AS value
    FROM (
        SELECT trace_id, span_id, experiment, config_id, role, attributes
        FROM otel_shadow_spans
        -- the keys first, alone (see otel_shadow_runs in views.sql): only spans with a metric go on
        WHERE arrayExists(k -> startsWith(k, '{A.SHADOW_METRIC_PREFIX}'), attribute_keys) AND span_id != ''
          AND role IN ('candidate', 'replicate') AND outcome = 'ok'
        LIMIT 1 BY trace_id, span_id  -- re-sent copies are identical
    )
    ARRAY JOIN arrayFilter(k -> startsWith(k, '{A.SHADOW_METRIC_PREFIX}'), mapKeys(attributes)) AS key
)
WHERE value IS NOT NULL
GROUP BY ALL
"""


# The analysis's ended-experiments statement (otel_shadow.analysis.ended.ENDED_SQL) over shadow_runs
# reads the attribute values of every primary. The same rows here, the key shadow.candidates.drop_reasons
# tested first (the keys' bloom filter and a read of the keys alone: a primary without drop reasons
# costs no values), re-sent copies once as in shadow_runs.
_ENDED_SQL = f"""
SELECT experiment, min(start_time) AS ended_at, count() AS expired_calls
FROM (
    SELECT experiment, any(start_time) AS start_time
    FROM otel_shadow_spans
    WHERE has(attribute_keys, '{A.SHADOW_DROP_REASONS}') AND span_id != ''
      AND role = '{A.ROLE_PRIMARY}' AND experiment IS NOT NULL
      AND drop_reasons IS NOT NULL AND concat(',', drop_reasons, ',') LIKE '%,{A.DROP_EXPIRED},%'
    GROUP BY trace_id, span_id, experiment, role
)
GROUP BY experiment
ORDER BY experiment
"""
