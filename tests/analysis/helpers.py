"""Stores of simulated pairs, written through the real OTLP writer, for the analysis tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from otel_shadow.analysis import Report, Thresholds, build_report
from otel_shadow.store import Store, Writer

from ..store.otlp import request, span


def arm_spans(
    trace_id: bytes, primary_id: bytes, role: str, config: str, ms: float, outcome: str, output: str, experiment: str
) -> Any:
    return span(
        experiment,
        {
            "shadow.experiment": experiment,
            "shadow.role": role,
            "shadow.config.id": config,
            "shadow.outcome": outcome,
            "shadow.output.hash": output,
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 20,
        },
        trace_id=trace_id,
        parent=primary_id,
        duration_ms=ms,
        links=[(trace_id, primary_id, {"shadow.link": "primary"})],
    )


def write_pairs(
    path: Path,
    primary_ms: np.ndarray,
    candidate_ms: np.ndarray,
    primary_error: np.ndarray | None = None,
    candidate_error: np.ndarray | None = None,
    candidate_differs: np.ndarray | None = None,
    replicate_differs: np.ndarray | None = None,
    experiment: str = "exp",
    routes: list[str] | None = None,
) -> None:
    """One primary and one candidate span per element (and a replicate where replicate_differs is given).

    ``routes``: an ``http.route`` attribute on each primary execution (a segment).
    """
    n = len(primary_ms)
    none = np.zeros(n, dtype=bool)
    pe = none if primary_error is None else primary_error
    ce = none if candidate_error is None else candidate_error
    cd = none if candidate_differs is None else candidate_differs
    spans = []
    for i in range(n):
        trace_id = os.urandom(16)
        primary = span(
            experiment,
            {
                "shadow.experiment": experiment,
                "shadow.role": "primary",
                "shadow.config.id": "P",
                "shadow.outcome": "error" if pe[i] else "ok",
                "shadow.output.hash": "same",
                "shadow.candidates.scheduled": 1,
                "shadow.candidates.dropped": 0,
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 20,
                **({"http.route": routes[i]} if routes is not None else {}),
            },
            trace_id=trace_id,
            duration_ms=float(primary_ms[i]),
            start=1_700_000_000_000_000_000 + i * 1_000_000,
        )
        spans.append(primary)
        spans.append(
            arm_spans(
                trace_id,
                primary.span_id,
                "candidate",
                "C",
                float(candidate_ms[i]),
                "error" if ce[i] else "ok",
                f"other-{i}" if cd[i] else "same",
                experiment,
            )
        )
        if replicate_differs is not None:
            spans.append(
                arm_spans(
                    trace_id,
                    primary.span_id,
                    "replicate",
                    "P",
                    float(primary_ms[i]),
                    "ok",
                    f"again-{i}" if replicate_differs[i] else "same",
                    experiment,
                )
            )
    with Store.open(path) as store:
        writer = Writer(store)
        for start in range(0, len(spans), 3000):
            writer.write(request(*spans[start : start + 3000]))


def report_of(path: Path, thresholds: Thresholds | None = None, segment_by: str | None = None) -> Report:
    with Store.open(path, read_only=True) as store:
        return build_report(lambda sql: _rows(store, sql), thresholds, segment_by=segment_by)


def _rows(store: Store, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    result = store.query(sql)
    return result.columns, result.rows


def lognormal_pairs(n: int, seed: int, slowdown: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Latencies sharing a per-request factor (prompt length drives both arms), log-normal."""
    rng = np.random.default_rng(seed)
    request = rng.normal(0.0, 0.5, n)
    primary = np.exp(np.log(800.0) + request + rng.normal(0.0, 0.25, n))
    candidate = np.exp(np.log(800.0) + request + rng.normal(0.0, 0.25, n)) * slowdown
    return primary, candidate
