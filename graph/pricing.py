"""Token prices per model, and the cost of a model call from its usage metadata."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graph.errors import ConfigurationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float


DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI list prices (standard tier), USD per 1M tokens.
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4o": Price(input=2.50, output=10.00),
    "o4-mini": Price(input=1.10, output=4.40),
    "o3-mini": Price(input=1.10, output=4.40),
    "o3": Price(input=2.00, output=8.00),
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, output=0.40),
}
"""Prices of the default tier models and their common neighbours; `CRANE_PRICES` adds or overrides."""


class PriceTable:
    """Look up a model's price by exact name, or by the longest known name it is a dated version of."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        """Use `prices` (model name -> price)."""
        self._prices = dict(prices)
        self._warned: set[str] = set()

    @classmethod
    def from_json(cls, raw: str | None) -> PriceTable:
        """Return the defaults updated with `raw`, a JSON object `{"model": {"input": x, "output": y}}`.

        Raises:
            ConfigurationError: `raw` is not such an object, or a price is negative.
        """
        prices = dict(DEFAULT_PRICES)
        if raw and raw.strip():
            prices.update(_parse_prices(raw))
        return cls(prices)

    def price_for(self, model: str) -> Price | None:
        """Return the price of `model`; `gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`."""
        if model in self._prices:
            return self._prices[model]
        # Longest prefix first, so gpt-4o-mini-2024-07-18 never matches gpt-4o.
        for name in sorted(self._prices, key=len, reverse=True):
            if model.startswith(name + "-"):
                return self._prices[name]
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """Return the cost in USD of one call; an unpriced model costs 0 and is logged once."""
        price = self.price_for(model)
        if price is None:
            if model not in self._warned:
                self._warned.add(model)
                logger.warning(
                    "no price for model %r: its calls count as free (CRANE_PRICES)", model
                )
            return 0.0
        return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


def _parse_prices(raw: str) -> dict[str, Price]:
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"CRANE_PRICES is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError('CRANE_PRICES must be a JSON object {"model": {"input": x, ...}}')
    prices: dict[str, Price] = {}
    for model, entry in data.items():
        try:
            price = Price(input=float(entry["input"]), output=float(entry["output"]))
        except (TypeError, KeyError, ValueError):
            raise ConfigurationError(
                f"CRANE_PRICES[{model!r}] must be {{'input': number, 'output': number}} "
                "(USD per million tokens)"
            ) from None
        if not all(math.isfinite(v) and v >= 0 for v in (price.input, price.output)):
            raise ConfigurationError(
                f"CRANE_PRICES[{model!r}] must be finite and not negative (USD per million tokens)"
            )
        prices[str(model)] = price
    return prices
