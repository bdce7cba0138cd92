"""Which experiments ended (a time limit: ``ends_at``, ``max_duration`` or ``max_calls``) and when.

Past a limit the SDK schedules no candidate and the primary span records the drop reason
``expired`` (docs/experiments.md, "time limits"). The first such primary marks the end; every one
of them is a call that was not shadowed. Read from ``shadow_runs``, which both stores define (the
DuckDB views and the ClickHouse ones), so the one statement runs unchanged on either.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from .. import attributes as A
from ..errors import QueryError
from .data import Query

__all__ = ["ENDED_SQL", "EndedExperiment", "read_ended"]

# drop_reasons is comma-separated: bracket it in commas so only the whole word matches
ENDED_SQL = f"""
SELECT experiment,
       min(start_time) AS ended_at,
       count(*)        AS expired_calls
FROM shadow_runs
WHERE role = '{A.ROLE_PRIMARY}'
  AND drop_reasons IS NOT NULL
  AND concat(',', drop_reasons, ',') LIKE '%,{A.DROP_EXPIRED},%'
GROUP BY experiment
ORDER BY experiment
"""


@dataclass(frozen=True, slots=True)
class EndedExperiment:
    """An experiment past its time limit: when its first call was not shadowed, and how many were not."""

    experiment: str
    ended_at: str  # ISO 8601, the first expired primary span's start (UTC)
    expired_calls: int  # primary calls whose candidates were dropped as expired

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "ended_at": self.ended_at, "expired_calls": self.expired_calls}


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, _dt.datetime) else str(value)


def read_ended(query: Query) -> list[EndedExperiment]:
    """Every ended experiment, by name; empty when none ended or the store cannot answer.

    A store that cannot run the statement (an older schema without ``drop_reasons``) has recorded
    no expiry either: the report then shows nothing ended rather than failing as a whole.
    """
    try:
        _, rows = query(ENDED_SQL)
    except QueryError:
        return []
    return [EndedExperiment(str(r[0]), _iso(r[1]), int(r[2])) for r in rows]
