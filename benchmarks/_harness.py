"""Shared helpers for the benchmarks: interleaved timing blocks, percentiles, result files.

Baselines and candidates are measured in the same process, in alternating blocks, so machine
noise (other jobs on a shared 2-core VM) lands on both sides of every ratio.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def interleaved(
    cases: dict[str, Callable[[], Any]],
    calls: int,
    block: int = 500,
    warmup: int = 500,
    pause_s: float = 0.0,
    between: Callable[[], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Per-call wall times (µs) for each case, measured in alternating blocks.

    ``pause_s`` sleeps between calls (untimed), as a service does between requests or while its
    request waits on I/O: background work then runs in the pause instead of beside the caller.
    ``between`` runs (untimed) after every block, e.g. to drain the background work a case left
    behind, so that it is not charged to the case measured next.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(max(1, calls // block)):
        for name, fn in cases.items():
            out = samples[name]
            for _ in range(block):
                t0 = clock()
                fn()
                out.append((clock() - t0) / 1000)
                if pause_s:
                    time.sleep(pause_s)
            if between is not None:
                between()
    return {name: np.asarray(v) for name, v in samples.items()}


def paired_ratio(samples: dict[str, np.ndarray], case: str, base: str, block: int, q: float = 50) -> float:
    """Median over rounds of (case's q-th percentile / base's) within the same round.

    ``interleaved`` runs each case in turn, ``block`` calls at a time; comparing the two cases
    round by round cancels the machine's drift (a shared VM's speed moves by 10-20% over seconds),
    which a ratio of pooled percentiles does not.
    """
    a, b = samples[case], samples[base]
    rounds = min(len(a), len(b)) // block
    ratios = [
        np.percentile(a[i * block : (i + 1) * block], q) / np.percentile(b[i * block : (i + 1) * block], q)
        for i in range(rounds)
    ]
    return float(np.median(ratios))


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20
