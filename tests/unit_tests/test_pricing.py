from __future__ import annotations

import json
import logging

import pytest

from graph.errors import ConfigurationError
from graph.pricing import DEFAULT_PRICES, Price, PriceTable


@pytest.mark.parametrize("raw", [None, "", "   \n"])
def test_no_overrides_gives_the_defaults(raw: str | None) -> None:
    table = PriceTable.from_json(raw)
    for model, price in DEFAULT_PRICES.items():
        assert table.price_for(model) == price
    assert table.price_for("gpt-4o-mini") == Price(input=0.15, output=0.60)


def test_overrides_merge_with_the_defaults() -> None:
    raw = json.dumps(
        {
            "gpt-4o": {"input": 1, "output": 2},
            "my-model": {"input": 0.5, "output": 1.5},
        }
    )
    table = PriceTable.from_json(raw)
    assert table.price_for("gpt-4o") == Price(input=1.0, output=2.0)
    assert table.price_for("my-model") == Price(input=0.5, output=1.5)
    assert table.price_for("gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]
    assert table.price_for("o4-mini") == DEFAULT_PRICES["o4-mini"]


def test_overrides_do_not_change_the_module_defaults() -> None:
    PriceTable.from_json(json.dumps({"gpt-4o": {"input": 99, "output": 99}}))
    assert DEFAULT_PRICES["gpt-4o"] == Price(input=2.50, output=10.00)
    assert PriceTable.from_json(None).price_for("gpt-4o") == Price(input=2.50, output=10.00)


def test_zero_price_is_allowed() -> None:
    table = PriceTable.from_json(json.dumps({"local": {"input": 0, "output": 0}}))
    assert table.price_for("local") == Price(input=0.0, output=0.0)


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"gpt-4o": {"input": 1, "output": 2}',  # truncated
        "[]",
        '"gpt-4o"',
        "42",
        "null",
        '{"m": 3}',
        '{"m": null}',
        '{"m": []}',
        '{"m": {}}',
        '{"m": {"input": 1}}',
        '{"m": {"output": 1}}',
        '{"m": {"input": "cheap", "output": 1}}',
        '{"m": {"input": null, "output": 1}}',
        '{"m": {"input": -0.01, "output": 1}}',
        '{"m": {"input": 1, "output": -1}}',
    ],
)
def test_bad_prices_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="CRANE_PRICES"):
        PriceTable.from_json(raw)


def test_one_bad_entry_rejects_the_whole_table() -> None:
    raw = json.dumps({"ok": {"input": 1, "output": 1}, "bad": {"input": -1, "output": 1}})
    with pytest.raises(ConfigurationError, match="bad"):
        PriceTable.from_json(raw)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_prices_are_refused(value: str) -> None:
    # json.loads accepts NaN/Infinity; a NaN price makes every cost NaN, and a NaN daily spend
    # never reaches the budget (`nan >= budget` is False), so CRANE_BUDGET_USD stops nothing.
    with pytest.raises(ConfigurationError, match="CRANE_PRICES"):
        PriceTable.from_json('{"m": {"input": %s, "output": 1}}' % value)


def test_price_for_exact_name() -> None:
    table = PriceTable.from_json(None)
    assert table.price_for("gpt-4o") == DEFAULT_PRICES["gpt-4o"]
    assert table.price_for("o3") == DEFAULT_PRICES["o3"]
    assert table.price_for("o3-mini") == DEFAULT_PRICES["o3-mini"]


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o3-2025-04-16", "o3"),
        ("o4-mini-2025-04-16", "o4-mini"),
    ],
)
def test_dated_versions_are_priced_as_their_longest_base(model: str, priced_as: str) -> None:
    table = PriceTable.from_json(None)
    assert table.price_for(model) == DEFAULT_PRICES[priced_as]


def test_dated_mini_is_never_priced_as_the_big_model() -> None:
    table = PriceTable.from_json(None)
    assert table.price_for("gpt-4o-mini-2024-07-18") != DEFAULT_PRICES["gpt-4o"]


def test_dated_version_of_an_override() -> None:
    table = PriceTable.from_json(json.dumps({"acme-large": {"input": 3, "output": 6}}))
    assert table.price_for("acme-large-2025-01-01") == Price(input=3.0, output=6.0)


@pytest.mark.parametrize(
    "model",
    ["unknown-model", "", "gpt-4", "gpt-4omini", "GPT-4O", "o3mini", "xgpt-4o"],
)
def test_unknown_models_have_no_price(model: str) -> None:
    assert PriceTable.from_json(None).price_for(model) is None


def test_cost_math() -> None:
    table = PriceTable.from_json(None)
    # gpt-4o-mini: 0.15 in, 0.60 out per million tokens
    assert table.cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert table.cost("gpt-4o-mini", 0, 1_000_000) == pytest.approx(0.60)
    assert table.cost("gpt-4o-mini", 1000, 500) == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert table.cost("gpt-4o", 2000, 100) == pytest.approx((2000 * 2.5 + 100 * 10) / 1e6)
    assert table.cost("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost("gpt-4o", 0, 0) == 0.0


def test_unknown_model_costs_nothing_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.from_json(None)
    with caplog.at_level(logging.WARNING, logger="graph.pricing"):
        assert table.cost("mystery", 1000, 1000) == 0.0
        assert table.cost("mystery", 5000, 5000) == 0.0
        assert table.cost("gpt-4o-mini", 1000, 1000) > 0
    warnings = [r for r in caplog.records if r.name == "graph.pricing"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "mystery" in warnings[0].getMessage()
    assert "CRANE_PRICES" in warnings[0].getMessage()


def test_each_unknown_model_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.from_json(None)
    with caplog.at_level(logging.WARNING, logger="graph.pricing"):
        for _ in range(3):
            table.cost("a", 1, 1)
            table.cost("b", 1, 1)
    messages = [r.getMessage() for r in caplog.records if r.name == "graph.pricing"]
    assert len(messages) == 2
    assert any("'a'" in m for m in messages) and any("'b'" in m for m in messages)


def test_warning_state_is_per_table(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="graph.pricing"):
        PriceTable.from_json(None).cost("mystery", 1, 1)
        PriceTable.from_json(None).cost("mystery", 1, 1)
    assert len([r for r in caplog.records if r.name == "graph.pricing"]) == 2
