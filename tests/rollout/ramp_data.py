"""Synthetic shadow pairs and canary cohorts at chosen times, written through the real OTLP writer."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import numpy as np

from otel_shadow.store import Store, Writer

from ..store.otlp import request, span

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def ns(moment: dt.datetime) -> int:
    return int((moment - EPOCH).total_seconds() * 1e9)


class FakeClock:
    """A clock the test moves by hand (UTC)."""

    def __init__(self, start: dt.datetime = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


def _write(store: Store, spans: list[Any]) -> None:
    writer = Writer(store)
    for start in range(0, len(spans), 3000):
        writer.write(request(*spans[start : start + 3000]))


def write_pairs(
    store: Store,
    experiment: str,
    n: int,
    at: dt.datetime,
    seed: int,
    candidate_error_rate: float = 0.0,
    slowdown: float = 1.0,
) -> None:
    """``n`` primary × candidate pairs starting at ``at`` (one per millisecond), same latency law."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0.0, 0.5, n)
    primary_ms = np.exp(np.log(800.0) + shared + rng.normal(0.0, 0.1, n))
    candidate_ms = np.exp(np.log(800.0) + shared + rng.normal(0.0, 0.1, n)) * slowdown
    errors = rng.random(n) < candidate_error_rate
    base = ns(at)
    spans = []
    for i in range(n):
        trace_id = os.urandom(16)
        start = base + i * 1_000_000
        primary = span(
            experiment,
            {
                "shadow.experiment": experiment,
                "shadow.role": "primary",
                "shadow.config.id": "P",
                "shadow.outcome": "ok",
                "shadow.output.hash": "same",
                "shadow.candidates.scheduled": 1,
                "shadow.candidates.dropped": 0,
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 20,
            },
            trace_id=trace_id,
            duration_ms=float(primary_ms[i]),
            start=start,
        )
        candidate = span(
            experiment,
            {
                "shadow.experiment": experiment,
                "shadow.role": "candidate",
                "shadow.config.id": "C",
                "shadow.outcome": "error" if errors[i] else "ok",
                "shadow.output.hash": "same",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 20,
            },
            trace_id=trace_id,
            parent=primary.span_id,
            duration_ms=float(candidate_ms[i]),
            start=start,
            links=[(trace_id, primary.span_id, {"shadow.link": "primary"})],
        )
        spans += [primary, candidate]
    _write(store, spans)


def write_cohorts(
    store: Store,
    experiment: str,
    canary: int,
    primary: int,
    at: dt.datetime,
    seed: int,
    canary_error_rate: float = 0.0,
    primary_error_rate: float = 0.0,
    slowdown: float = 1.0,
) -> None:
    """``canary`` canary calls (role canary, config C) and ``primary`` primary calls from ``at`` on."""
    rng = np.random.default_rng(seed)
    base = ns(at)
    spans = []
    for i in range(canary + primary):
        is_canary = i < canary
        ms = float(np.exp(np.log(800.0) + rng.normal(0.0, 0.5))) * (slowdown if is_canary else 1.0)
        failed = rng.random() < (canary_error_rate if is_canary else primary_error_rate)
        spans.append(
            span(
                experiment,
                {
                    "shadow.experiment": experiment,
                    "shadow.role": "canary" if is_canary else "primary",
                    "shadow.config.id": "C" if is_canary else "P",
                    "shadow.outcome": "error" if failed else "ok",
                    "shadow.output.hash": "same",
                },
                duration_ms=ms,
                start=base + i * 1_000_000,
            )
        )
    _write(store, spans)
