"""The price table: shipped defaults, a user's file over them, and costs from token counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_shadow import ConfigError
from otel_shadow.pricing import DEFAULT_PRICES, Price, PriceTable, load_prices


def test_a_call_costs_its_tokens_times_the_price_per_million() -> None:
    table = PriceTable({"m": Price(input=2.0, output=8.0)})
    assert table.cost("m", 1_000, 500) == pytest.approx((1_000 * 2.0 + 500 * 8.0) / 1e6)
    assert table.cost("m", None, None) is None  # no tokens, no guessed cost
    assert table.cost("unknown-model", 1_000, 500) is None


def test_dated_model_names_find_their_family_but_not_a_longer_family() -> None:
    table = PriceTable(DEFAULT_PRICES)
    assert table.price("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert table.price("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]  # longest match wins
    assert table.price("gpt-4oX") is None  # a prefix must end at a separator
    assert "claude-sonnet-4-20250514" in table


def test_a_prices_file_overrides_and_extends_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("gpt-4o: {input: 1.0, output: 4.0}\nmy-finetune: {input: 3, output: 12}\n")
    table = load_prices(path)
    assert table.price("gpt-4o") == Price(1.0, 4.0)
    assert table.price("my-finetune") == Price(3.0, 12.0)
    assert table.price("gpt-4.1") == DEFAULT_PRICES["gpt-4.1"]
    monkeypatch.setenv("OTEL_SHADOW_PRICES", str(path))
    assert load_prices().price("my-finetune") == Price(3.0, 12.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpt-4o: 2.5\n", "model 'gpt-4o': write {input"),
        ("gpt-4o: {input: -1, output: 2}\n", "input price -1 must be a number ≥ 0"),
        ("gpt-4o: {input: 1, outptu: 2}\n", "model 'gpt-4o': write"),
        ("- a\n- b\n", "expected a mapping"),
        ("gpt-4o: {input: [1, 2\n", r"prices.yaml:\d+: not valid YAML"),
        ("a: &x {input: 1}\nb: *x\n", "aliases"),
    ],
)
def test_a_wrong_prices_file_names_the_file_the_model_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_prices(path)
    assert str(path) in str(info.value)


def test_an_oversized_or_missing_prices_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (2 * 2**20))
    with pytest.raises(ConfigError, match="larger than"):
        load_prices(big)
    with pytest.raises(ConfigError, match="prices file .* cannot be read"):
        load_prices(tmp_path / "nope.yaml")
