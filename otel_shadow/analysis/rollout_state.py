"""Where each rule's rollout plan stands, read from the store's ``rollout_history`` (docs/rollout.md).

The newest row of a rule is its state; the rows before it are its history (who or what moved it,
when, on which verdict). Read through the same query function as the rest of the analysis; a
store written before the table existed has no rollout, not an error.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import QueryError
from .data import Query

__all__ = ["HISTORY_SQL", "MAX_HISTORY", "Move", "RolloutState", "read_rollout"]

MAX_HISTORY = 20  # moves per rule shown in the report; the table keeps them all

HISTORY_SQL = f"""
SELECT rule, seq, moved_at, action, step, phase, fraction, status, actor, verdict, pairs, reason, rules_file, plan
FROM (SELECT *, row_number() OVER (PARTITION BY rule ORDER BY seq DESC) AS newest FROM rollout_history)
WHERE newest <= {MAX_HISTORY}
ORDER BY rule, seq
"""


@dataclass(frozen=True, slots=True)
class Move:
    """One move of a plan: the step it applied and why."""

    seq: int
    at: str  # ISO 8601, UTC
    action: str  # start, advance, complete, rollback, promote
    step: int  # index from 0 of the step applied
    phase: str
    fraction: float
    status: str
    actor: str
    verdict: str | None
    pairs: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class RolloutState:
    """A rule's plan now (its newest move) and the moves that led there, oldest first."""

    rule: str
    step: int
    steps: int  # how many steps the plan has
    phase: str
    fraction: float
    status: str  # active, complete, rolled_back
    since: str  # when the current step was applied
    rules_file: str | None
    history: list[Move] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, _dt.datetime) else str(value)


def read_rollout(query: Query) -> list[RolloutState]:
    """Every rule's plan state, with its last ``MAX_HISTORY`` moves; empty when the table is absent."""
    import json

    try:
        columns, rows = query(HISTORY_SQL)
    except QueryError:  # a store from before rollouts, read-only: nothing was rolled out
        return []
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        r = dict(zip(columns, row))
        by_rule.setdefault(r["rule"], []).append(r)
    out = []
    for rule, moves in by_rule.items():
        last = moves[-1]
        try:
            steps = len(json.loads(last["plan"] or "[]"))
        except ValueError:
            steps = 0
        history = [
            Move(
                int(m["seq"]),
                _iso(m["moved_at"]),
                m["action"],
                int(m["step"]),
                m["phase"],
                float(m["fraction"]),
                m["status"],
                m["actor"],
                m["verdict"],
                None if m["pairs"] is None else int(m["pairs"]),
                m["reason"],
            )
            for m in moves
        ]
        out.append(
            RolloutState(
                rule,
                int(last["step"]),
                steps,
                last["phase"],
                float(last["fraction"]),
                last["status"],
                _iso(last["moved_at"]),
                last["rules_file"],
                history,
            )
        )
    return out
