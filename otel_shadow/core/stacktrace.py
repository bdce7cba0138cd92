"""Exception events on spans, at a cost bounded and small enough for a background thread.

The SDK's ``Span.record_exception`` formats the stack with ``traceback.format_exception``, which on
Python 3.11+ parses each frame's source line to draw the ``^^^^`` markers: about 45 µs for a
two-frame stack, all of it holding the GIL. When a candidate raises, that runs on a worker thread
while the user's request may be waiting for the GIL. This module writes the same event (name
``exception``; ``exception.type``, ``.message``, ``.stacktrace``, ``.escaped`` as the SDK does) with
a stack in Python's own layout, minus the markers, and with at most ``MAX_FRAMES`` frames per
exception and ``MAX_CHAIN`` chained exceptions, so a deep recursion cannot make it slow either.
"""

from __future__ import annotations

import linecache
from typing import Any

from opentelemetry.trace import Span

from .. import attributes as A

__all__ = ["MAX_CHAIN", "MAX_FRAMES", "exception_type_name", "format_stacktrace", "record_exception"]

MAX_FRAMES = 64  # per exception: the innermost ones (where it was raised) are kept
MAX_CHAIN = 4  # exceptions followed through __cause__ / __context__

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def exception_type_name(exc: BaseException) -> str:
    """``module.QualName`` as the SDK writes it (builtins without a module)."""
    cls = type(exc)
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the event
        return "<exception str() failed>"


def _one(exc: BaseException, out: list[str]) -> None:
    frames: list[tuple[Any, int]] = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    if frames:
        out.append("Traceback (most recent call last):\n")
        if len(frames) > MAX_FRAMES:
            out.append(f"  [... {len(frames) - MAX_FRAMES} outer frames omitted ...]\n")
            frames = frames[-MAX_FRAMES:]
        for code, lineno in frames:
            filename = code.co_filename
            out.append(f'  File "{filename}", line {lineno}, in {code.co_name}\n')
            line = linecache.getline(filename, lineno).strip()
            if line:
                out.append(f"    {line}\n")
    message = _message(exc)
    name = exception_type_name(exc)
    out.append(f"{name}: {message}\n" if message else f"{name}\n")


def format_stacktrace(exc: BaseException) -> str:
    """The exception and its chain, outermost first, in the layout of Python's own tracebacks."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    out: list[str] = []
    for item, link in reversed(chain):
        _one(item, out)
        if link:
            out.append(link)
    return "".join(out)


def record_exception(span: Span, exc: BaseException, escaped: bool = False) -> None:
    """Add the ``exception`` event to ``span`` (what ``span.record_exception`` adds, made cheaply)."""
    span.add_event(
        A.EXCEPTION_EVENT,
        {
            A.EXCEPTION_TYPE: exception_type_name(exc),
            A.EXCEPTION_MESSAGE: _message(exc),
            A.EXCEPTION_STACKTRACE: format_stacktrace(exc),
            A.EXCEPTION_ESCAPED: str(escaped),
        },
    )
