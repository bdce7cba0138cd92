"""Test helpers shipped with otel-shadow: the simulated OpenAI/Anthropic-compatible model server.

The names are imported when first used, so ``python -m otel_shadow.testing.llm_server`` runs the
module once (importing it here first made runpy warn that it was already imported).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .llm_server import DEFAULT_MODELS, LLMServer, SimulatedModel

__all__ = ["DEFAULT_MODELS", "LLMServer", "SimulatedModel"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'otel_shadow.testing' has no attribute {name!r}")
    from . import llm_server

    return getattr(llm_server, name)
