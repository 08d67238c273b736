"""Costs computed by hand from settings.LLM_PRICES_PER_MTOK."""

import logging
from decimal import Decimal

from apps.llm.pricing import cost_usd


def test_sonnet_call_with_cache_write_and_read():
    # Sonnet 4.6: $3 input, $15 output per million tokens.
    # 1,000 plain input = 0.003; 10,000 written (1.25×) = 0.0375; 50,000 read (0.1×) = 0.015;
    # 500 output = 0.0075. Total 0.063.
    cost = cost_usd(
        model="claude-sonnet-4-6",
        input_tokens=1_000,
        output_tokens=500,
        cache_creation_input_tokens=10_000,
        cache_read_input_tokens=50_000,
    )
    assert cost == Decimal("0.063")


def test_one_hour_cache_write_costs_double():
    # Haiku 4.5 at $1: 1,000,000 tokens written with the 1-hour TTL = $2.
    assert cost_usd(
        model="claude-haiku-4-5", input_tokens=0, output_tokens=0, cache_creation_input_tokens=1_000_000, cache_ttl="1h"
    ) == Decimal(2)


def test_batch_halves_everything():
    # Opus 4.6: $5 / $25. 200,000 in + 40,000 out = 1.0 + 1.0 = 2.0; batch → 1.0.
    assert cost_usd(model="claude-opus-4-6", input_tokens=200_000, output_tokens=40_000, batch=True) == Decimal(1)


def test_dated_snapshot_ids_use_their_family_price():
    assert cost_usd(model="claude-haiku-4-5-20251001", input_tokens=1_000_000, output_tokens=0) == Decimal(1)


def test_unknown_model_warns_and_costs_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="apps.llm.pricing"):
        cost = cost_usd(model="claude-imaginary-9", input_tokens=10, output_tokens=10)
    assert cost == Decimal(0)
    assert "claude-imaginary-9" in caplog.text


def test_prices_follow_settings(settings):
    settings.LLM_PRICES_PER_MTOK = {"claude-haiku-4-5": (2.0, 4.0)}
    assert cost_usd(model="claude-haiku-4-5", input_tokens=500_000, output_tokens=250_000) == Decimal(2)
