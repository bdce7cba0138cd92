"""Zero-code shadowing of OpenAI and Anthropic calls (``opentelemetry-instrument`` + a rules file).

    OTEL_SHADOW_CONFIG=shadow.yaml opentelemetry-instrument python app.py

or programmatically:

    OpenAIShadowInstrumentor().instrument(rules="shadow.yaml", tracer_provider=provider)

It builds on the core's scheduling, sampling, guard rails and span contract, and imports nothing
from the store or the collector.
"""

from .engine import ShadowEngine, aflush, flush
from .instrumentors import AnthropicShadowInstrumentor, OpenAIShadowInstrumentor
from .rules import Budget, CandidateRule, Match, Rule, Rules, RulesSource, load_rules, parse_rules

__all__ = [
    "AnthropicShadowInstrumentor",
    "Budget",
    "CandidateRule",
    "Match",
    "OpenAIShadowInstrumentor",
    "Rule",
    "Rules",
    "RulesSource",
    "ShadowEngine",
    "aflush",
    "flush",
    "load_rules",
    "parse_rules",
]
