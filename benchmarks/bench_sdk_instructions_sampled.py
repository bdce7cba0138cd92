"""Issue 12's side-by-side figures, in CPU instructions per call (valgrind callgrind), not seconds.

Three cases, each in its own process under callgrind, a run with zero calls subtracted:

* ``bare_span``: one OpenTelemetry span with the four attributes a user would set by hand;
* ``unsampled``: an experiment call the sampler drops (``sample_rate=0``);
* ``sampled``: an experiment call with one candidate scheduled. The only worker is held inside the
  first candidate, so the others queue and what is counted is the caller's path alone (the main
  thread, ``--separate-threads``); the process ends right after the loop.

``PYTHONHASHSEED=0`` keeps dict and set layouts, and so the counts, the same run after run.

Each case is also counted without the garbage collector's share (``gc_collect_main``, inclusive,
read with ``callgrind_annotate``). With the worker held, every sampled call's task stays queued, so
the collector runs every ~150 calls and its cost is spread over all of them here; a collection
lands in a few calls in a hundred, so it moves the mean and the tail, not the median (the bar is
on the p50). Both figures are reported.
Side by side with an older commit: ``git worktree add /tmp/base <commit>`` and pass ``--repo /tmp/base``.

Run: python benchmarks/bench_sdk_instructions_sampled.py [--repo PATH] [--calls N]   (needs valgrind)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import save

PROGRAM = r"""
import sys
from opentelemetry import context, trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from otel_shadow import Config, Scheduler, Shadow
class NullProcessor(SpanProcessor):
    pass
provider = TracerProvider()
provider.add_span_processor(NullProcessor())
tracer = provider.get_tracer("bench")
case, n = sys.argv[1], int(sys.argv[2])
rate = 1.0 if case == "sampled" else 0.0
shadow = Shadow([{"model": "gpt-4", "temperature": 0.5}, {"model": "gpt-5-beta", "temperature": 0.5}],
                tracer_provider=provider, sample_rate=rate, scheduler=Scheduler(workers=1, max_pending=10000), metrics=[])
@shadow.experiment(name="bench")
def fn(prompt, config: Config):
    return config["model"] + ": " + prompt
request = tracer.start_span("request")
context.attach(trace.set_span_in_context(request))
# the four attributes a user would set by hand
attrs4 = {"app.model": "gpt-4", "app.temperature": 0.5, "app.outcome": "ok", "app.output.length": 12}
fn("hi")
shadow.flush(10)
with tracer.start_as_current_span("bench", attributes=attrs4):
    pass
if case == "sampled":  # the worker holds the first candidate: the rest queue, the caller's path alone is counted
    import threading
    gate = threading.Event()
    exp = fn.__shadow_experiment__
    real = exp.fn
    def held(prompt, config):
        if config["model"] != "gpt-4":
            gate.wait()
        return real(prompt, config)
    exp.fn = held
    fn("hi")
    import time
    while shadow.scheduler.idle_workers: time.sleep(0.001)
if case == "bare_span":
    for _ in range(n):
        with tracer.start_as_current_span("bench", attributes=attrs4):
            "gpt-4" + ": " + "hi"
else:
    for _ in range(n):
        fn("hi")
# every case (and the zero-call run subtracted from it) stops counting here, before the exit
# handlers: the held candidates of the sampled case are not the caller's cost
import os
sys.stdout.flush()
os._exit(0)
"""


def _gc_instructions(path: str) -> int:
    """Instructions spent in the garbage collector (inclusive) in one thread's callgrind file."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", path], capture_output=True, text=True, check=True)
    return sum(
        int(m.group(1).replace(",", "")) for m in re.finditer(r"^\s*([\d,]+) .*:gc_collect_main\b", out.stdout, re.M)
    )


def run(repo: str, case: str, calls: int) -> tuple[int, int, int]:
    """(all threads, main thread, main thread in the garbage collector) instructions of one process."""
    out_dir = tempfile.mkdtemp()
    env = {**os.environ, "PYTHONPATH": repo, "PYTHONHASHSEED": "0"}
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out_dir}/cg"]
    out = subprocess.run(
        [*cmd, sys.executable, "-c", PROGRAM, case, str(calls)], capture_output=True, text=True, cwd=repo, env=env
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    total = int(re.search(r"Collected : (\d+)", out.stderr).group(1))  # type: ignore[union-attr]
    main = main_gc = 0
    for path in glob.glob(f"{out_dir}/cg*"):
        text = Path(path).read_text()
        thread = re.search(r"^thread: (\d+)", text, re.M)
        totals = re.search(r"^(?:totals|summary): (\d+)", text, re.M)
        if thread and totals and thread.group(1) == "1":
            main = int(totals.group(1))
            main_gc = _gc_instructions(path)
        os.unlink(path)
    os.rmdir(out_dir)
    return total, main, main_gc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    base_total, base_main, base_gc = run(args.repo, "bare_span", 0)
    result: dict[str, object] = {"calls": args.calls, "repo": args.repo}
    per_call: dict[str, tuple[float, float]] = {}
    for case in ("bare_span", "unsampled", "sampled"):
        total, main_thread, main_gc = run(args.repo, case, args.calls)
        mean = (main_thread - base_main) / args.calls
        without_gc = (main_thread - main_gc - (base_main - base_gc)) / args.calls
        per_call[case] = (mean, without_gc)
        result[case] = {
            "instructions_per_call": mean,
            "instructions_per_call_without_gc": without_gc,
            "all_threads_per_call": (total - base_total) / args.calls,
        }
    bare, bare_without_gc = per_call["bare_span"]
    for case in ("unsampled", "sampled"):
        mean, without_gc = per_call[case]
        result[f"{case}_ratio"] = mean / bare
        result[f"{case}_ratio_without_gc"] = without_gc / bare_without_gc
    path = save("sdk-instructions-sampled", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
