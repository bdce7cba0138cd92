"""Test helpers shipped with otel-shadow: the simulated OpenAI/Anthropic-compatible model server."""

from .llm_server import DEFAULT_MODELS, LLMServer, SimulatedModel

__all__ = ["DEFAULT_MODELS", "LLMServer", "SimulatedModel"]
