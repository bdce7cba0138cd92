"""Model prices: what a call costs, from its token counts.

One table serves everything that needs a price: the rules file's hourly cost budget (zero-code
shadowing) and the report's cost per call and its delta. Shadow traffic costs money; the report
should say how much, and whether the candidate is cheaper.

The shipped defaults are providers' published list prices for common models, in US dollars per
million tokens, as of ``DEFAULTS_AS_OF``. They go stale, and your contract may differ: override or
extend them with a YAML file (``OTEL_SHADOW_PRICES`` or ``--prices``)::

    # prices.yaml: USD per million tokens
    gpt-4o: {input: 2.50, output: 10.00}
    my-finetune: {input: 3.00, output: 12.00}

A model is looked up by its exact name, then by the longest known name it starts with
(``gpt-4o-2024-08-06`` → ``gpt-4o``); an unknown model has no price, and no cost is guessed for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .environment_variables import OTEL_SHADOW_PRICES
from .errors import ConfigError

__all__ = ["DEFAULTS_AS_OF", "DEFAULT_PRICES", "Price", "PriceTable", "load_prices"]

DEFAULTS_AS_OF = "2025-06"
MAX_PRICES_FILE_BYTES = 1 * 2**20


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input and output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: float | None, output_tokens: float | None) -> float | None:
        """The cost of one call; None when neither token count is known."""
        if input_tokens is None and output_tokens is None:
            return None
        return ((input_tokens or 0) * self.input + (output_tokens or 0) * self.output) / 1e6


DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    # Anthropic
    "claude-opus-4": Price(15.00, 75.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-haiku": Price(0.25, 1.25),
}


class PriceTable:
    """Prices by model name (exact, then longest matching prefix)."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._by_length = sorted(self._prices, key=len, reverse=True)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.price(model) is not None

    def price(self, model: str | None) -> Price | None:
        if not model:
            return None
        found = self._prices.get(model)
        if found is not None:
            return found
        for name in self._by_length:
            if model.startswith(name) and model[len(name) : len(name) + 1] in ("-", "@", ":", "."):
                return self._prices[name]
        return None

    def cost(self, model: str | None, input_tokens: float | None, output_tokens: float | None) -> float | None:
        price = self.price(model)
        return price.cost(input_tokens, output_tokens) if price is not None else None

    def merged(self, overrides: Mapping[str, Price]) -> PriceTable:
        return PriceTable({**self._prices, **overrides})


def parse_prices(data: Any, source: str) -> dict[str, Price]:
    """``{model: {input: x, output: y}}`` → prices; errors name the source, the model and the fix."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of model → {{input: …, output: …}} (USD per million tokens)")
    prices: dict[str, Price] = {}
    for model, entry in data.items():
        if not isinstance(entry, Mapping) or set(entry) - {"input", "output"} or not entry:
            raise ConfigError(
                f"{source}: model {model!r}: write {{input: <USD per million input tokens>, output: <… output tokens>}}"
            )
        values = {}
        for key in ("input", "output"):
            value = entry.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
                raise ConfigError(f"{source}: model {model!r}: {key} price {value!r} must be a number ≥ 0")
            values[key] = float(value)
        prices[str(model)] = Price(values["input"], values["output"])
    return prices


def load_prices(path: str | os.PathLike[str] | None = None) -> PriceTable:
    """The defaults, overridden by ``path`` (or ``OTEL_SHADOW_PRICES``) when given."""
    from .safe_yaml import load_yaml, read_text_file

    table = PriceTable(DEFAULT_PRICES)
    path = path if path is not None else os.environ.get(OTEL_SHADOW_PRICES) or None
    if path is None:
        return table
    _, data = load_yaml(read_text_file(path, MAX_PRICES_FILE_BYTES, "prices file"), str(path), "a prices file")
    return table.merged(parse_prices(data or {}, str(path)))
