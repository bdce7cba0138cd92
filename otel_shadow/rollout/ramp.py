"""Moving a rule along its rollout plan: one step per call, on the verdict of the data of that step.

``Ramp(store, rules_path, plan, validate).advance(actor)`` reads where the rule's plan stands (the
newest ``rollout_history`` row), judges the pairs (shadow step) or the canary cohorts (canary step)
that arrived since that step began, and:

* the first call applies the plan's first step (``start``);
* PASS, with ``min_pairs`` and ``min_time`` reached at this step: the next step (``advance``), or
  ``complete`` after the last;
* FAIL: ``rollback``: canary fraction 0 and the first step's sample rate; the plan then stays
  rolled back until a person runs ``promote``;
* anything else (MARGINAL, INSUFFICIENT, PASS on too little data or too soon): ``hold``, nothing
  written.

A move rewrites the rules file (``rules_file``: a targeted, parsed, atomic edit) and records the
move in the same DuckDB transaction, which commits only once the new file is in place: a refused
edit leaves both the file and the history as they were. The store's single-writer lock also keeps
two rollouts from moving the same plan at once.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.canary import build_canary_reports
from ..analysis.data import Query
from ..analysis.gates import Thresholds
from ..analysis.report import build_report
from ..analysis.rollout_state import RolloutState, read_rollout
from ..analysis.verdict import SEVERITY
from ..errors import ConfigError, DatabaseLocked
from ..pricing import PriceTable
from ..store import Store
from .plan import Plan, Step
from .rules_file import Validate, checked_edit, read_rules_text, rule_names, rule_values, write_atomically

__all__ = ["Outcome", "Ramp", "StepVerdict", "decide", "default_actor", "open_store"]

Clock = Callable[[], _dt.datetime]
_TIMED_VIEWS = re.compile(r"\b(shadow_pairs|shadow_metrics)\b")


def default_actor() -> str:
    """``user@host`` of whoever runs the command."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without passwd entry)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _naive_utc(moment: _dt.datetime) -> _dt.datetime:
    return moment.astimezone(_dt.timezone.utc).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _epoch_us(moment: _dt.datetime) -> int:
    return int((_naive_utc(moment) - _dt.datetime(1970, 1, 1)).total_seconds() * 1e6)


def open_store(db: str) -> Store:
    """The store as its writer; a held database is refused with what to do."""
    try:
        return Store.open(db)
    except DatabaseLocked as exc:
        raise DatabaseLocked(
            f"a rollout records each move in the store, which needs the database to itself, and {exc} "
            "Run `otel-shadow rollout`/`promote`/`rollback` while no other process holds it (stop the "
            "application using the in-process exporter, or the collector, for the moment it takes); "
            "moving a plan through a running collector is not supported yet"
        ) from exc


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """The verdict on the data gathered at one step, and how much data it rests on."""

    verdict: str  # PASS, MARGINAL, FAIL, INSUFFICIENT
    pairs: int  # pairs (shadow step) or canary calls (canary step); the smallest over the rule's candidates
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call did."""

    rule: str
    action: str  # start, advance, complete, rollback, promote, hold, none
    step: int
    step_name: str
    status: str
    verdict: str | None
    pairs: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def decide(step: Step, verdict: StepVerdict, elapsed_s: float) -> tuple[str, str]:
    """(``advance`` | ``hold`` | ``rollback``, why) for a step's verdict after ``elapsed_s`` at it."""
    if verdict.verdict == "FAIL":
        return "rollback", "; ".join(verdict.reasons[:3]) or "the verdict is FAIL"
    if verdict.verdict != "PASS":
        why = "; ".join(verdict.reasons[:2])
        return "hold", f"verdict {verdict.verdict}" + (f": {why}" if why else "")
    missing = []
    if verdict.pairs < step.min_pairs:
        what = "canary calls" if step.phase == "canary" else "pairs"
        missing.append(f"{verdict.pairs:,} of {step.min_pairs:,} {what}")
    if elapsed_s < step.min_time_s:
        missing.append(f"{elapsed_s:,.0f} s of {step.min_time_s:,.0f} s at this step")
    if missing:
        return "hold", "PASS, but not enough yet: " + ", ".join(missing)
    return "advance", f"PASS on {verdict.pairs:,} {'canary calls' if step.phase == 'canary' else 'pairs'}"


def _worst(verdicts: list[str]) -> str:
    return min(verdicts, key=SEVERITY.__getitem__)


def _since(query: Query, since_us: int) -> Query:
    """``query`` with the pair views restricted to pairs started at or after ``since_us``."""

    def restricted(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        return query(
            _TIMED_VIEWS.sub(
                lambda m: f"(SELECT * FROM {m.group(1)} WHERE start_time >= make_timestamp({since_us}))", sql
            )
        )

    return restricted


class Ramp:
    """One rule of one rules file, moved along ``plan``; ``validate(text, source)`` is the rules parser."""

    def __init__(
        self,
        store: Store,
        rules_path: str | Path,
        plan: Plan,
        validate: Validate,
        rule: str | None = None,
        thresholds: Thresholds | None = None,
        prices: PriceTable | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.store = store
        self.rules_path = Path(rules_path)
        self.plan = plan
        self.validate = validate
        self.thresholds = thresholds or Thresholds()
        self.prices = prices
        self.clock = clock
        text = read_rules_text(self.rules_path)
        validate(text, str(self.rules_path))
        names = rule_names(text, str(self.rules_path))
        if rule is None:
            if len(names) != 1:
                raise ConfigError(
                    f"{self.rules_path} has {len(names)} rules ({', '.join(names) or 'none'}); name the one to move with --rule"
                )
            rule = names[0]
        elif rule not in names:
            raise ConfigError(f"{self.rules_path} has no rule named {rule!r}; rules here: {', '.join(names) or 'none'}")
        self.rule = rule

    # --- reading ----------------------------------------------------------------------------------
    def _query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = self.store.query(sql)
        return result.columns, result.rows

    def state(self) -> RolloutState | None:
        return next((s for s in read_rollout(self._query) if s.rule == self.rule), None)

    def verdict_since(self, step: Step, since: _dt.datetime) -> StepVerdict:
        """The rule's verdict on the data that arrived since ``since`` (the step's start)."""
        since_us = _epoch_us(since)
        query = _since(self._query, since_us)
        report = build_report(query, self.thresholds, prices=self.prices, sections=False)
        shadow = [c for c in report.candidates if c.experiment == self.rule]
        if step.phase == "shadow":
            if not shadow:
                return StepVerdict("INSUFFICIENT", 0, [f"no pairs of rule {self.rule!r} since this step began"])
            verdict = _worst([c.verdict for c in shadow])
            pairs = min(int(c.metrics.get("pairs") or 0) for c in shadow)
            reasons = [r for c in shadow if c.verdict == verdict for r in c.reasons]
            return StepVerdict(verdict, pairs, reasons)
        canary = [c for c in build_canary_reports(self._query, self.thresholds, since_us) if c.experiment == self.rule]
        failing = [c for c in shadow if c.verdict == "FAIL"]  # the shadow pairs still count against it
        if failing:
            return StepVerdict(
                "FAIL",
                min(int(c.metrics.get("pairs") or 0) for c in failing),
                [f"shadow pairs: {r}" for c in failing for r in c.reasons],
            )
        if not canary:
            return StepVerdict("INSUFFICIENT", 0, [f"no canary calls of rule {self.rule!r} since this step began"])
        verdict = _worst([c.verdict for c in canary])
        calls = min(int(c.metrics.get("canary_calls") or 0) for c in canary)
        reasons = [f"canary (unpaired): {r}" for c in canary if c.verdict == verdict for r in c.reasons]
        return StepVerdict(verdict, calls, reasons)

    # --- moving -----------------------------------------------------------------------------------
    def advance(self, actor: str = "rollout") -> Outcome:
        """One step of ``otel-shadow rollout``: start, advance, complete, hold, or roll back."""
        state = self.state()
        if state is None:
            return self._move("start", 0, "active", actor, None, "the plan's first step")
        if state.status != "active":
            step = self.plan.steps[min(state.step, len(self.plan.steps) - 1)]
            hint = (
                "run `otel-shadow promote` to start again from the first step"
                if state.status == "rolled_back"
                else "nothing left to do"
            )
            return Outcome(
                self.rule,
                "none",
                state.step,
                step.describe(),
                state.status,
                None,
                None,
                f"the plan is {state.status.replace('_', ' ')} since {state.since}; {hint}",
            )
        step = self._step_of(state)
        since = _dt.datetime.fromisoformat(state.since)
        verdict = self.verdict_since(step, since)
        elapsed = (_naive_utc(self.clock()) - _naive_utc(since)).total_seconds()
        action, why = decide(step, verdict, elapsed)
        if action == "hold":
            return Outcome(
                self.rule,
                "hold",
                state.step,
                step.describe(),
                "active",
                verdict.verdict,
                verdict.pairs,
                f"holding at {step.describe()}: {why}{self._drift(state.step)}",
            )
        if action == "rollback":
            return self._rollback(actor, verdict, why)
        if state.step + 1 >= len(self.plan.steps):
            return self._move("complete", state.step, "complete", actor, verdict, why)
        return self._move("advance", state.step + 1, "active", actor, verdict, why)

    def _drift(self, index: int) -> str:
        """A note when the rules file no longer says what step ``index`` wrote (a hand edit since)."""
        sample_rate, canary = self._values(index, "active")
        now = rule_values(read_rules_text(self.rules_path), str(self.rules_path), self.rule)
        notes = [
            f"{name} is {found}, not the step's {wanted}"
            for name, wanted, found in (
                ("sample_rate", sample_rate, now.sample_rate),
                ("canary.fraction", canary, now.canary_fraction),
            )
            if wanted is not None and found != wanted
        ]
        return (
            f"; note: the rules file was edited since ({', '.join(notes)}); the next move sets it again"
            if notes
            else ""
        )

    def promote(self, actor: str) -> Outcome:
        """A person moves the plan one step on, whatever the verdict (which is recorded with the move)."""
        state = self.state()
        if state is None or state.status == "rolled_back":
            return self._move("promote", 0, "active", actor, None, "promoted by hand to the first step")
        if state.status == "complete":
            raise ConfigError(f"rule {self.rule!r}: the plan is complete since {state.since}; nothing to promote")
        step = self._step_of(state)
        verdict = self.verdict_since(step, _dt.datetime.fromisoformat(state.since))
        why = f"promoted by hand on verdict {verdict.verdict}"
        if state.step + 1 >= len(self.plan.steps):
            return self._move("complete", state.step, "complete", actor, verdict, why)
        return self._move("promote", state.step + 1, "active", actor, verdict, why)

    def rollback(self, actor: str, reason: str = "rolled back by hand") -> Outcome:
        """Canary fraction 0, the first step's sample rate; the plan stays there until promoted."""
        state = self.state()
        verdict = None
        if state is not None and state.status == "active":
            verdict = self.verdict_since(self._step_of(state), _dt.datetime.fromisoformat(state.since))
        return self._rollback(actor, verdict, reason)

    def _step_of(self, state: RolloutState) -> Step:
        if state.step >= len(self.plan.steps):
            raise ConfigError(
                f"rule {self.rule!r} is at step {state.step + 1} in the store, but {self.plan.source} has "
                f"{len(self.plan.steps)} steps; use the plan it was started with, or `otel-shadow rollback` and start again"
            )
        return self.plan.steps[state.step]

    def _rollback(self, actor: str, verdict: StepVerdict | None, why: str) -> Outcome:
        return self._move("rollback", 0, "rolled_back", actor, verdict, why)

    def _values(self, index: int, status: str) -> tuple[float | None, float | None]:
        """(sample_rate, canary fraction) to write for step ``index`` (None: leave as it is)."""
        text = read_rules_text(self.rules_path)
        has_canary = rule_values(text, str(self.rules_path), self.rule).has_canary
        if status == "rolled_back":
            return self.plan.first_shadow_fraction() or None, 0.0 if has_canary else None
        step = self.plan.steps[index]
        if step.phase == "shadow":
            return step.fraction, 0.0 if has_canary else None
        return self.plan.shadow_fraction_at(index), step.fraction

    def _move(self, action: str, index: int, status: str, actor: str, verdict: StepVerdict | None, why: str) -> Outcome:
        step = self.plan.steps[index]
        if status == "complete":
            sample_rate, canary = None, None  # the last step stays applied
        else:
            sample_rate, canary = self._values(index, status)
        con = self.store.con
        con.execute("BEGIN TRANSACTION")
        try:
            row = con.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM rollout_history WHERE rule = ?", [self.rule]
            ).fetchone()
            seq = int(row[0]) if row else 1
            applied = step if status != "rolled_back" else Step("shadow", sample_rate or 0.0)
            con.execute(
                "INSERT INTO rollout_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    self.rule,
                    seq,
                    _naive_utc(self.clock()),
                    action,
                    index,
                    applied.phase,
                    applied.fraction,
                    status,
                    actor,
                    verdict.verdict if verdict else None,
                    verdict.pairs if verdict else None,
                    why,
                    str(self.rules_path),
                    self.plan.to_json(),
                ],
            )
            if sample_rate is not None or canary is not None:
                text = read_rules_text(self.rules_path)
                new = checked_edit(
                    text,
                    str(self.rules_path),
                    self.rule,
                    self.validate,
                    sample_rate=sample_rate,
                    canary_fraction=canary,
                )
                if new != text:
                    write_atomically(self.rules_path, new)
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except Exception:  # the first error is the one to show
                pass
            raise
        where = {"complete": "the plan is complete", "rolled_back": "rolled back"}.get(
            status, f"now at {step.describe()}"
        )
        return Outcome(
            self.rule,
            action,
            index,
            step.describe() if status != "rolled_back" else "rolled back",
            status,
            verdict.verdict if verdict else None,
            verdict.pairs if verdict else None,
            f"{action}: {where} ({why})",
        )
