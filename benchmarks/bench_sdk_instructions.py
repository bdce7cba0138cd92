"""Issue 2's unsampled overhead counted in CPU instructions (valgrind callgrind), not seconds.

Wall-clock ratios on a shared 2-vCPU VM move by 10-20% between runs; instruction counts are the
same run after run. Each case runs in its own process under callgrind; a run with zero calls is
subtracted, so what is left is the cost per call.

Run: python benchmarks/bench_sdk_instructions.py   (needs valgrind; takes about two minutes)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

from _harness import save

CALLS = 2000

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
shadow = Shadow([{"model": "gpt-4", "temperature": 0.5}, {"model": "gpt-5-beta", "temperature": 0.5}],
                tracer_provider=provider, sample_rate=0.0, scheduler=Scheduler(workers=1))

@shadow.experiment(name="bench")
def unsampled(prompt, config: Config):
    return config["model"] + ": " + prompt

request = tracer.start_span("request")
context.attach(trace.set_span_in_context(request))
exp = unsampled.__shadow_experiment__
attrs = {**exp._primary_attrs, **exp.shadow_plan.unsampled["sampling"],
         "shadow.outcome": "ok", "shadow.output.hash": "0123456789abcdef", "shadow.output.length": 12}
unsampled("hi")
with tracer.start_as_current_span("bench", attributes=attrs):
    pass
case, n = sys.argv[1], int(sys.argv[2])
if case == "bare_span":
    for _ in range(n):
        with tracer.start_as_current_span("bench", attributes=attrs):
            "gpt-4" + ": " + "hi"
else:
    for _ in range(n):
        unsampled("hi")
"""


def instructions(case: str, calls: int) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            PROGRAM,
            case,
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))  # type: ignore[union-attr]


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    setup = instructions("bare_span", 0)
    bare = (instructions("bare_span", CALLS) - setup) / CALLS
    unsampled = (instructions("unsampled", CALLS) - setup) / CALLS
    result = {
        "calls": CALLS,
        "bare_span_instructions_per_call": bare,
        "unsampled_instructions_per_call": unsampled,
        "unsampled_ratio": unsampled / bare,
    }
    path = save("sdk-instructions", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
