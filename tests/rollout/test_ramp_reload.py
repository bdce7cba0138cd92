"""Every application process sees a ramp step within 2 s of the rules file changing (the issue's bound).

Two real processes load the rules through ``RulesSource`` (the hot reload every instrumented
application runs, checking the file once a second) and print the sample rate they see whenever it
changes; a rollout moves the plan, and each process must report the new rate by the deadline.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from otel_shadow.instrumentation.rules import parse_rules
from otel_shadow.rollout.plan import DEFAULT_PLAN
from otel_shadow.rollout.ramp import Ramp
from otel_shadow.store import Store

from .ramp_data import FakeClock
from .test_ramp import RULES

DEADLINE_S = 2.0

APP = """
import sys, time
from otel_shadow.instrumentation.rules import RulesSource

source = RulesSource(sys.argv[1])  # the default: the file is checked once a second
seen = None
while True:
    rate = source.rules.rules[0].sample_rate
    if rate != seen:
        print(rate, flush=True)
        seen = rate
    time.sleep(0.01)
"""


def _reader(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.strip())


def _next(lines: queue.Queue[str], timeout: float) -> str | None:
    try:
        return lines.get(timeout=max(timeout, 0.0))
    except queue.Empty:
        return None


def test_every_process_sees_a_ramp_step_within_2_s(tmp_path: Path) -> None:
    rules = tmp_path / "shadow.yaml"
    rules.write_text(RULES)
    apps = [
        subprocess.Popen(
            [sys.executable, "-c", APP, str(rules)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
        )
        for _ in range(2)
    ]
    feeds: list[queue.Queue[str]] = []
    readers = []
    try:
        for app in apps:
            feed: queue.Queue[str] = queue.Queue()
            readers.append(threading.Thread(target=_reader, args=(app, feed), daemon=True))
            readers[-1].start()
            feeds.append(feed)
        for feed in feeds:  # each has loaded the file (start-up time is not part of the bound)
            assert _next(feed, 60) == "0.01"
        with Store.open(tmp_path / "s.duckdb") as store:
            Ramp(store, rules, DEFAULT_PLAN, parse_rules, clock=FakeClock()).advance()  # start: 5%
        written = time.monotonic()
        seen = []
        for feed in feeds:
            line = None
            while line != "0.05":
                line = _next(feed, written + DEADLINE_S - time.monotonic())
                if line is None:
                    break
            seen.append(line)
        assert seen == ["0.05", "0.05"], f"processes reported {seen} within {DEADLINE_S} s of the rename"
    finally:
        for app in apps:
            app.terminate()
            app.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)  # the pipe ended with the process; then it is closed
        for app in apps:
            if app.stdout is not None:
                app.stdout.close()
