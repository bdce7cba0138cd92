"""A rollout plan: the steps from a little shadow traffic to every user on the candidate.

    # plan.yaml
    steps:
      - {phase: shadow, fraction: 0.05, min_time: 1h, min_pairs: 500}
      - {phase: shadow, fraction: 0.25, min_time: 1h, min_pairs: 500}
      - {phase: shadow, fraction: 1.0,  min_time: 2h, min_pairs: 1000}
      - {phase: canary, fraction: 0.05, min_time: 4h, min_pairs: 500}
      - {phase: canary, fraction: 1.0,  min_time: 0,  min_pairs: 500}

A shadow step sets the rule's ``sample_rate`` (the share of calls whose candidates run in the
background); a canary step sets the rule's ``canary.fraction`` (the share of users served the
candidate's answer). Without a file, ``DEFAULT_PLAN`` is the seeds' path: shadow 5% → 25% → 100%,
then canary 5% → 25% → 50% → 100%. A step is left when the verdict on the data gathered during it
is PASS, it has lasted ``min_time`` and rests on ``min_pairs`` pairs (canary calls at a canary
step). Every shadow step comes before every canary step, and fractions never go down within a
phase: a plan that does otherwise is refused, with the file, line, key, value and the fix.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

import yaml

from ..errors import ConfigError
from ..safe_yaml import bounded, load_yaml, read_text_file

__all__ = ["DEFAULT_PLAN", "MAX_PLAN_BYTES", "MAX_STEPS", "Plan", "Step", "load_plan", "parse_plan"]

MAX_PLAN_BYTES = 64 * 1024  # a plan is a dozen lines; a larger file is a mistake or an attack
MAX_STEPS = 50

Phase = Literal["shadow", "canary"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_STEP_KEYS = {"phase", "fraction", "min_time", "min_pairs"}


@dataclass(frozen=True, slots=True)
class Step:
    """One step: ``fraction`` of traffic in ``phase``, held at least ``min_time_s`` and ``min_pairs``."""

    phase: Phase
    fraction: float
    min_time_s: float = 3600.0
    min_pairs: int = 500

    def describe(self) -> str:
        return f"{self.phase} {self.fraction * 100:g}%"


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    source: str = "default plan"

    def to_json(self) -> str:
        return json.dumps([asdict(s) for s in self.steps])

    def first_shadow_fraction(self) -> float:
        return next((s.fraction for s in self.steps if s.phase == "shadow"), 0.0)

    def shadow_fraction_at(self, index: int) -> float | None:
        """The sample_rate in force at step ``index``: its own, or the last shadow step's before it."""
        for step in reversed(self.steps[: index + 1]):
            if step.phase == "shadow":
                return step.fraction
        return None


DEFAULT_PLAN = Plan(
    tuple([Step("shadow", f) for f in (0.05, 0.25, 1.0)] + [Step("canary", f) for f in (0.05, 0.25, 0.5, 1.0)]),
    "default plan (shadow 5% → 25% → 100%, canary 5% → 25% → 50% → 100%)",
)


def _line(node: yaml.Node | None, *path: str | int) -> int:
    """The 1-based line of the value at ``path`` (or of the nearest node found on the way)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                return line
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_S[m.group(2)]
    return None


def parse_plan(text: str, source: str = "<plan>") -> Plan:
    """Validate a plan document; every error names ``source:line``, the key, the value and the fix."""
    if len(text.encode()) > MAX_PLAN_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_PLAN_BYTES} bytes; a plan is a few lines of YAML")
    root, data = load_yaml(text, source, "a rollout plan")

    def fail(message: str, *path: str | int) -> ConfigError:
        return ConfigError(bounded(f"{source}:{_line(root, *path)}: {message}"))

    if not isinstance(data, dict) or "steps" not in data:
        raise fail("a plan is a mapping with a `steps:` list (see docs/rollout.md)")
    unknown = sorted(set(data) - {"steps"})
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}; a plan has only `steps:`", unknown[0])
    raw = data["steps"]
    if not isinstance(raw, list) or not raw:
        raise fail("steps: must be a non-empty list of {phase, fraction, min_time, min_pairs}", "steps")
    if len(raw) > MAX_STEPS:
        raise fail(f"steps: {len(raw)} steps; at most {MAX_STEPS}", "steps")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        where = ("steps", i)
        if not isinstance(item, dict):
            raise fail(
                f"steps[{i}]: {str(item)[:40]!r} is not a mapping; write {{phase: shadow, fraction: 0.05}}", *where
            )
        extra = sorted(set(item) - _STEP_KEYS, key=str)
        if extra:
            raise fail(f"steps[{i}].{extra[0]}: unknown key; a step has {sorted(_STEP_KEYS)}", *where, extra[0])
        phase = item.get("phase")
        if phase not in ("shadow", "canary"):
            raise fail(f"steps[{i}].phase: {str(phase)[:40]!r} is not a phase; use shadow or canary", *where, "phase")
        fraction = item.get("fraction")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            raise fail(
                f"steps[{i}].fraction: {str(fraction)[:40]!r} is not a fraction; use a number above 0 and at most 1 (0.05 = 5%)",
                *where,
                "fraction",
            )
        min_time = _duration(item.get("min_time", 3600))
        if min_time is None:
            raise fail(
                f"steps[{i}].min_time: {str(item.get('min_time'))[:40]!r} is not a duration; use seconds (600) or 30m, 2h, 1d",
                *where,
                "min_time",
            )
        min_pairs = item.get("min_pairs", 500)
        if isinstance(min_pairs, bool) or not isinstance(min_pairs, int) or min_pairs < 0:
            raise fail(
                f"steps[{i}].min_pairs: {str(min_pairs)[:40]!r} must be a whole number ≥ 0 (e.g. 500)",
                *where,
                "min_pairs",
            )
        step = Step(phase, float(fraction), min_time, min_pairs)
        if steps:
            before = steps[-1]
            if before.phase == "canary" and step.phase == "shadow":
                raise fail(
                    f"steps[{i}].phase: a shadow step after a canary step; put every shadow step first", *where, "phase"
                )
            if before.phase == step.phase and step.fraction < before.fraction:
                raise fail(
                    f"steps[{i}].fraction: {step.fraction:g} is below the step before ({before.fraction:g}); "
                    "fractions only grow within a phase (a way back is `otel-shadow rollback`)",
                    *where,
                    "fraction",
                )
        steps.append(step)
    return Plan(tuple(steps), source)


def load_plan(path: str | os.PathLike[str] | None) -> Plan:
    """The plan in ``path``, or ``DEFAULT_PLAN`` when it is None."""
    if path is None:
        return DEFAULT_PLAN
    return parse_plan(read_text_file(path, MAX_PLAN_BYTES, "rollout plan"), str(path))
