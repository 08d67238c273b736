"""What a call cost, from token usage and `settings.LLM_PRICES_PER_MTOK` (USD per million tokens).

Input is split three ways by the API: `input_tokens` (after the last breakpoint, full price),
`cache_creation_input_tokens` (written to the cache: 1.25× for the 5-minute TTL, 2× for 1 hour) and
`cache_read_input_tokens` (0.1×). The Batches API halves every figure.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal

from django.conf import settings

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
CACHE_WRITE_MULTIPLIER = {"5m": Decimal("1.25"), "1h": Decimal(2)}
CACHE_READ_MULTIPLIER = Decimal("0.1")
BATCH_MULTIPLIER = Decimal("0.5")
_DATED_SUFFIX = re.compile(r"-\d{8}$")
_warned: set[str] = set()


def prices_for(model: str) -> tuple[Decimal, Decimal] | None:
    """(input, output) USD per million tokens, accepting dated snapshot ids (`…-20251001`)."""
    table = settings.LLM_PRICES_PER_MTOK
    price = table.get(model) or table.get(_DATED_SUFFIX.sub("", model))
    if price is None:
        return None
    return Decimal(str(price[0])), Decimal(str(price[1]))


def cost_usd(
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    cache_ttl: str = "5m",
    cache_creation_1h_input_tokens: int = 0,
    batch: bool = False,
) -> Decimal:
    """The USD cost of one call. An unpriced model logs a warning (once per model) and costs 0.

    `cache_creation_1h_input_tokens` is the part of the cache write made with the 1-hour TTL (the
    API's `usage.cache_creation.ephemeral_1h_input_tokens`), priced 2×; the rest of the write is priced
    at `cache_ttl`'s multiplier (1.25× for the 5-minute default).
    """
    prices = prices_for(model)
    if prices is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning(
                "No price for model %r in settings.LLM_PRICES_PER_MTOK; its calls are recorded at cost 0.", model
            )
        return Decimal(0)
    input_price, output_price = prices
    write_multiplier = CACHE_WRITE_MULTIPLIER.get(cache_ttl, CACHE_WRITE_MULTIPLIER["5m"])
    written_1h = min(max(cache_creation_1h_input_tokens, 0), cache_creation_input_tokens)
    total = (
        Decimal(input_tokens) * input_price
        + Decimal(cache_creation_input_tokens - written_1h) * input_price * write_multiplier
        + Decimal(written_1h) * input_price * CACHE_WRITE_MULTIPLIER["1h"]
        + Decimal(cache_read_input_tokens) * input_price * CACHE_READ_MULTIPLIER
        + Decimal(output_tokens) * output_price
    ) / MILLION
    if batch:
        total *= BATCH_MULTIPLIER
    return total.quantize(Decimal("0.00000001"))
