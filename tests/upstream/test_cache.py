"""Prompt-cache accounting, through the SDK and directly on PromptCache."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from apps.upstream.cache import PromptCache
from apps.upstream.clock import ManualClock
from apps.upstream.prompt import MESSAGE_FRAMING_TOKENS, prompt_blocks
from apps.upstream.testing import RunningUpstream
from apps.upstream.tokens import count_text_tokens

from .conftest import HAIKU, SONNET, long_text


def cached_system(text: str, ttl: str | None = None) -> list[dict[str, Any]]:
    cache_control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        cache_control["ttl"] = ttl
    return [{"type": "text", "text": text, "cache_control": cache_control}]


def create(
    client: anthropic.Anthropic, system: Any, question: str = "hello", model: str = SONNET, **extra: Any
) -> anthropic.types.Usage:
    message = client.messages.create(
        model=model, max_tokens=20, system=system, messages=[{"role": "user", "content": question}], **extra
    )
    return message.usage


def test_identical_prefix_is_written_then_read(client: anthropic.Anthropic) -> None:
    system = cached_system(long_text(1_500))
    first = create(client, system, "first question")
    second = create(client, system, "another question")

    assert first.cache_creation_input_tokens > 1_024 and first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0


def test_input_tokens_are_only_what_follows_the_last_breakpoint(client: anthropic.Anthropic) -> None:
    system = cached_system(long_text(1_500))
    total = client.messages.count_tokens(
        model=SONNET, system=system, messages=[{"role": "user", "content": "what are your hours"}]
    ).input_tokens
    usage = create(client, system, "what are your hours")

    assert usage.input_tokens == total - usage.cache_creation_input_tokens
    assert usage.input_tokens == MESSAGE_FRAMING_TOKENS + count_text_tokens("what are your hours")


def test_prefix_below_the_model_minimum_is_not_cached(client: anthropic.Anthropic) -> None:
    system = cached_system(long_text(2_000))  # ≥ 1,024 (Sonnet) but < 4,096 (Haiku)
    for _ in range(2):
        usage = create(client, system, model=HAIKU)
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert create(client, system, model=SONNET).cache_creation_input_tokens > 0


def test_changed_prefix_is_a_new_write(client: anthropic.Anthropic) -> None:
    create(client, cached_system(long_text(1_500, "billing")))
    usage = create(client, cached_system(long_text(1_500, "shipping")))
    assert usage.cache_creation_input_tokens > 0 and usage.cache_read_input_tokens == 0


def test_same_prefix_on_another_model_is_a_new_write(client: anthropic.Anthropic) -> None:
    system = cached_system(long_text(1_500))
    create(client, system, model=SONNET)
    assert create(client, system, model="claude-sonnet-5").cache_read_input_tokens == 0


def test_entries_expire_after_five_minutes_and_hits_refresh_them(
    client: anthropic.Anthropic, upstream: RunningUpstream
) -> None:
    clock = upstream.config.clock
    assert isinstance(clock, ManualClock)
    system = cached_system(long_text(1_500))
    create(client, system)
    clock.advance(240)
    assert create(client, system).cache_read_input_tokens > 0  # hit at 4 min refreshes the TTL
    clock.advance(240)
    assert create(client, system).cache_read_input_tokens > 0  # 8 min after the write, 4 after the hit
    clock.advance(301)
    expired = create(client, system)
    assert expired.cache_read_input_tokens == 0 and expired.cache_creation_input_tokens > 0


def test_one_hour_ttl(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    clock = upstream.config.clock
    assert isinstance(clock, ManualClock)
    system = cached_system(long_text(1_500), ttl="1h")
    first = create(client, system)
    assert first.cache_creation.ephemeral_1h_input_tokens == first.cache_creation_input_tokens > 0
    assert first.cache_creation.ephemeral_5m_input_tokens == 0
    clock.advance(1_800)
    assert create(client, system).cache_read_input_tokens == first.cache_creation_input_tokens


def test_more_than_four_breakpoints_is_rejected(client: anthropic.Anthropic) -> None:
    blocks = [{"type": "text", "text": f"part {index}", "cache_control": {"type": "ephemeral"}} for index in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks with cache_control"):
        create(client, blocks)


def test_one_hour_breakpoint_after_five_minute_one_is_rejected(client: anthropic.Anthropic) -> None:
    blocks = cached_system("short", ttl="5m") + cached_system("later", ttl="1h")
    with pytest.raises(anthropic.BadRequestError, match="ttl='1h'"):
        create(client, blocks)


def test_several_breakpoints_read_the_longest_cached_prefix_and_write_the_rest(client: anthropic.Anthropic) -> None:
    tools_part = cached_system(long_text(1_200, "tools"))
    first = create(client, tools_part)
    both = tools_part + cached_system(long_text(600, "policy"))
    second = create(client, both)

    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens > 0  # the policy segment
    assert create(client, both).cache_read_input_tokens == (
        second.cache_read_input_tokens + second.cache_creation_input_tokens
    )


def test_automatic_caching_with_top_level_cache_control(client: anthropic.Anthropic) -> None:
    system = long_text(1_500)
    first = create(client, system, extra_body={"cache_control": {"type": "ephemeral"}})
    second = create(client, system, extra_body={"cache_control": {"type": "ephemeral"}})
    assert first.cache_creation_input_tokens > 0 and first.input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens


def conversation(turns: int) -> dict[str, Any]:
    """A growing conversation whose last user block carries the (moving) breakpoint."""
    messages: list[dict[str, Any]] = []
    for turn in range(turns):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"question {turn}"}]})
        if turn < turns - 1:
            messages.append({"role": "assistant", "content": f"answer {turn}"})
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {"model": SONNET, "system": long_text(1_500), "messages": messages}


def test_moving_breakpoint_hits_the_previous_turn_by_lookback() -> None:
    cache = PromptCache(ManualClock(start=0))
    first = cache.account(SONNET, prompt_blocks(conversation(1)), 1_024)
    second = cache.account(SONNET, prompt_blocks(conversation(2)), 1_024)

    assert first.cache_creation_input_tokens > 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == second.total_input_tokens - second.cache_read_input_tokens
    assert second.input_tokens == 0
