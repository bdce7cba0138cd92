"""Interpreter exit and fork: pending candidates are recorded, never lost silently."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent(
    """
    import os, sys, time
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from otel_shadow import Shadow, Config

    class Print(SpanExporter):
        def export(self, spans):
            for s in spans:
                line = " ".join(["SPAN", str(s.attributes.get("shadow.role")),
                                 str(s.attributes.get("shadow.config.m")), str(s.attributes.get("shadow.outcome"))])
                os.write(1, (line + "\\n").encode())  # one write: atomic on a pipe, even across fork
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Print()))
    trace.set_tracer_provider(provider)
    """
)


def run(script: str, **env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    return sorted(line for line in out.stdout.splitlines() if line.startswith("SPAN"))


def test_at_exit_pending_candidates_get_a_grace_period_then_are_recorded_cancelled() -> None:
    lines = run(
        """
        s = Shadow(configs=[{"m": "p"}, {"m": "quick"}, {"m": "slow"}], timeout=60)
        @s.experiment()
        def f(config: Config):
            if config["m"] == "quick": time.sleep(0.1)
            if config["m"] == "slow": time.sleep(30)
            return config["m"]
        f()
        # the interpreter exits now, with both candidates still running
        """,
        OTEL_SHADOW_EXIT_GRACE="1.0",
    )
    assert lines == [
        "SPAN candidate quick ok",
        "SPAN candidate slow cancelled",
        "SPAN primary p ok",
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_after_fork_the_child_runs_its_own_candidates() -> None:
    lines = run(
        """
        import os
        s = Shadow(configs=[{"m": "p"}, {"m": "c"}])
        @s.experiment()
        def f(who: str, config: Config):
            return who + config["m"]
        f("parent-")          # the parent's pool is running now
        s.flush(5)
        pid = os.fork()
        if pid == 0:
            with Shadow.run(f, await_variants=True) as runner:
                result = runner("child-")
            print("CHILD", [v.result for v in result.variant_results], flush=True)
            s.flush(5)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        """
    )
    assert lines.count("SPAN candidate c ok") == 2  # one from the parent, one from the child
    assert lines.count("SPAN primary p ok") == 2
