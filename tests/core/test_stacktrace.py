"""Exception events: the SDK's event, with a stack in Python's layout, at a bounded cost."""

from __future__ import annotations

import re
import traceback

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_shadow.core.stacktrace import MAX_CHAIN, MAX_FRAMES, format_stacktrace, record_exception


class LookupFailed(KeyError):
    pass


def _raise_chain() -> BaseException:
    def inner() -> None:
        raise ValueError("bad value")

    def middle() -> None:
        try:
            inner()
        except ValueError as exc:
            raise LookupFailed("no such key") from exc

    try:
        try:
            middle()
        except LookupFailed:
            {}["missing"]  # raises KeyError during handling (implicit context)
    except KeyError as exc:
        return exc
    raise AssertionError("unreachable")


def _python_layout_without_markers(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "".join(line for line in text.splitlines(keepends=True) if not re.fullmatch(r"\s*[\^~]+\s*", line))


def test_a_chained_exception_reads_as_pythons_own_traceback() -> None:
    exc = _raise_chain()
    assert format_stacktrace(exc) == _python_layout_without_markers(exc)
    text = format_stacktrace(exc)
    assert text.index("ValueError: bad value") < text.index("direct cause") < text.index("LookupFailed")
    assert text.index("LookupFailed") < text.index("During handling") < text.rindex("KeyError: 'missing'")


def test_a_deep_stack_is_cut_to_its_innermost_frames() -> None:
    def recurse(n: int) -> None:
        if n == 0:
            raise RecursionError("deep")
        recurse(n - 1)

    try:
        recurse(300)
    except RecursionError as exc:
        text = format_stacktrace(exc)
    assert text.count('  File "') == MAX_FRAMES
    assert "outer frames omitted" in text
    assert text.rstrip().endswith("RecursionError: deep")
    assert 'raise RecursionError("deep")' in text  # the frame that raised is kept


def test_a_long_or_cyclic_chain_is_bounded() -> None:
    errors = [ValueError(f"e{i}") for i in range(10)]
    for a, b in zip(errors, errors[1:]):
        b.__cause__ = a
    errors[0].__cause__ = errors[-1]  # a cycle
    text = format_stacktrace(errors[-1])
    assert text.count("ValueError: e") == MAX_CHAIN


def test_an_exception_whose_str_raises_is_still_recorded() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("s")
    record_exception(span, Unprintable())
    span.end()
    (event,) = exporter.get_finished_spans()[0].events
    assert event.attributes["exception.message"] == "<exception str() failed>"


def test_the_event_carries_what_the_sdk_records() -> None:
    exc = _raise_chain()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for record in (lambda s: s.record_exception(exc), lambda s: record_exception(s, exc)):
        span = tracer.start_span("s")
        record(span)
        span.end()
    sdk, ours = (s.events[0] for s in exporter.get_finished_spans())
    assert ours.name == sdk.name == "exception"
    assert set(ours.attributes) == set(sdk.attributes)
    for key in ("exception.type", "exception.message", "exception.escaped"):
        assert ours.attributes[key] == sdk.attributes[key]
    assert ours.attributes["exception.type"] == "KeyError"
