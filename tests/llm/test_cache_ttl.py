"""A prompt version's cache TTL: sent in the wire format, accounted by the emulator, priced right."""

from decimal import Decimal

import pytest
from django.conf import settings

from apps.llm.gateway import chat_stream
from apps.llm.models import LLMCall, RoutingRule
from apps.llm.preview import cache_ttl_break_even, cache_ttl_figures
from apps.llm.pricing import cost_usd
from apps.llm.prompting import system_blocks
from apps.llm.types import Finished
from tests.conftest import received_requests
from tests.llm.factories import ChatRequestFactory, PromptPartsFactory

SONNET = "claude-sonnet-4-6"


def per_token(model: str) -> Decimal:
    return Decimal(str(settings.LLM_PRICES_PER_MTOK[model][0])) / Decimal(1_000_000)


def test_the_system_breakpoints_carry_the_versions_ttl() -> None:
    one_hour = [b["cache_control"] for b in system_blocks(PromptPartsFactory(cache_ttl="1h")) if "cache_control" in b]
    default = [b["cache_control"] for b in system_blocks(PromptPartsFactory()) if "cache_control" in b]

    assert one_hour == [{"type": "ephemeral", "ttl": "1h"}] * 2
    assert default == [{"type": "ephemeral"}] * 2  # the API's 5-minute default, bytes as before


def test_a_one_hour_write_is_priced_at_twice_the_input_price_and_a_five_minute_one_at_1_25() -> None:
    price = per_token(SONNET)
    mixed = cost_usd(
        model=SONNET,
        input_tokens=0,
        output_tokens=0,
        cache_creation_input_tokens=3_000,
        cache_creation_1h_input_tokens=2_000,
    )
    assert mixed == (2_000 * price * 2 + 1_000 * price * Decimal("1.25")).quantize(Decimal("0.00000001"))


@pytest.mark.django_db(transaction=True)
async def test_a_one_hour_version_is_sent_accounted_and_priced_as_such(llm_upstream) -> None:
    await RoutingRule.objects.all().adelete()
    parts = PromptPartsFactory(cache_ttl="1h", version="9.1.0")

    for question in ("Where is my invoice?", "And the one before?"):
        events = [event async for event in chat_stream(ChatRequestFactory(prompt=parts, user_text=question))]
        assert isinstance(events[-1], Finished)

    sent = [r for r in received_requests(llm_upstream) if r["path"] == "/v1/messages"][-2:]
    assert all(
        block["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        for request in sent
        for block in request["body"]["system"]
        if "cache_control" in block
    )
    first, second = [call async for call in LLMCall.objects.filter(prompt_version="9.1.0").order_by("id")]
    assert first.cache_creation_input_tokens > 0 and second.cache_read_input_tokens > 0
    price = per_token(first.model)
    expected = (
        first.input_tokens * price
        + first.cache_creation_input_tokens * price * 2  # all of the write was with the 1-hour TTL
        + first.output_tokens * Decimal(str(settings.LLM_PRICES_PER_MTOK[first.model][1])) / Decimal(1_000_000)
    ).quantize(Decimal("0.00000001"))
    assert first.cost_usd == expected


def test_the_break_even_follows_the_api_multipliers() -> None:
    # n × 1.25 = 2 + (n − 1) × 0.1  →  n = 1.9 / 1.15
    assert cache_ttl_break_even() == pytest.approx(1.652, abs=0.001)
    figures = cache_ttl_figures(model=SONNET, prefix_tokens=10_000, ttl="1h")
    assert figures.write_1h_usd == Decimal("0.060000") and figures.write_5m_usd == Decimal("0.037500")
    assert figures.read_usd == Decimal("0.003000")
