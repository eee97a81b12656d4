"""Model prices and the cost of calls (DECKGEN_PRICES; `deckgen eval` and replay's cost
column). Cached prompt tokens, which OpenAI and vLLM report, cost their own price."""

from __future__ import annotations

from deckgen.errors import ConfigError

Prices = dict[str, tuple[float, ...]]


def parse_prices(raw: str) -> Prices:
    """DECKGEN_PRICES: "gpt-4o=2.50/10.00/1.25,deckgen=0.20/0.20", US dollars per million
    prompt / completion / cached prompt tokens, per model name as the server reports it.
    Without a cached price, cached tokens cost what other prompt tokens do."""
    prices: Prices = {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        model, _, numbers = entry.partition("=")
        parts = numbers.split("/")
        try:
            if len(parts) not in (2, 3):
                raise ValueError(numbers)
            prices[model.strip()] = tuple(float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"DECKGEN_PRICES entry {entry!r} is not MODEL=PROMPT/COMPLETION"
                              "[/CACHED] (US dollars per million tokens, e.g. "
                              "gpt-4o=2.50/10.00/1.25)") from None
        if not model.strip() or min(prices[model.strip()]) < 0:
            raise ConfigError(f"DECKGEN_PRICES entry {entry!r} needs a model name and prices "
                              "of at least 0")
    return prices


def cost_usd(price: tuple[float, ...], prompt_tokens: int, completion_tokens: int,
             cached_tokens: int = 0) -> float:
    """US dollars for one call or a sum of calls; `cached_tokens` are part of
    `prompt_tokens` (as OpenAI and vLLM report them) and cost the cached price."""
    cached_price = price[2] if len(price) > 2 else price[0]
    return ((prompt_tokens - cached_tokens) * price[0] + cached_tokens * cached_price
            + completion_tokens * price[1]) / 1e6
