"""What the wrappers need of wrapt: reaching the SDK's own method beneath every wrapper, and running
our code beneath the wrappers other instrumentations put inside ours (one GenAI span per call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt

__all__ = ["call_beneath", "original"]

# every wrapt wrapper derives from this (wrapt 2 split it from the public ObjectProxy)
_PROXY: Any = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


def original(resource: Any, method: str) -> Callable[..., Any]:
    """The SDK's own method, beneath every wrapt wrapper (ours and other instrumentations')."""
    fn = getattr(type(resource), method)
    while isinstance(fn, _PROXY):
        fn = fn.__wrapped__
    return fn


def call_beneath(wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any], here: Callable[..., Any]) -> Any:
    """Call ``wrapped`` with ``here`` run innermost, beneath every wrapt wrapper inside ours.

    Another instrumentation that wraps inside ours opens its GenAI span when its wrapper runs; by
    handing its wrapper our code as the function it wraps, that span is current when ``here``
    starts, so it becomes the primary (annotated) instead of a child of a second span of ours.
    ``here(fn, args, kwargs)`` gets the SDK's bound method.
    """
    wrapper = getattr(wrapped, "_self_wrapper", None) if isinstance(wrapped, _PROXY) else None
    if wrapper is None:
        return here(wrapped, args, kwargs)
    inner = wrapped.__wrapped__
    enabled = getattr(wrapped, "_self_enabled", None)
    if enabled is not None and not (enabled() if callable(enabled) else enabled):  # wrapt's own switch
        return call_beneath(inner, args, kwargs, here)
    return wrapper(lambda *a, **k: call_beneath(inner, a, k, here), wrapped._self_instance, args, kwargs)
