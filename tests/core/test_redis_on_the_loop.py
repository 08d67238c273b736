"""Async code reaches the cache's Redis on the event loop: rate limits and the circuit breaker's fast
paths (apps.core.cache), sharing their state with the synchronous functions of other processes."""

import asyncio
import uuid

import pytest
from django.core.cache import cache

from apps.core.ratelimit import rate_limit_hit, rate_limit_hit_async
from apps.llm import breaker

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_cache(settings, redis_url):
    """The default cache on the real Redis, under a key prefix of this test's own."""
    prefix = f"test-{uuid.uuid4().hex}"
    backend = "django.core.cache.backends.redis.RedisCache"
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": redis_url, "KEY_PREFIX": prefix}}
    yield cache
    client = cache._cache.get_client(write=True)
    for key in client.scan_iter(f"{prefix}:*"):  # only this test's keys (clear() would flush the database)
        client.delete(key)


async def test_async_rate_limit_shares_the_counter_of_the_sync_one(redis_cache) -> None:
    assert rate_limit_hit(key="t:shared", limit=3) is False  # e.g. another process, synchronous
    results = [await rate_limit_hit_async(key="t:shared", limit=3) for _ in range(3)]
    assert results == [False, False, True]
    assert rate_limit_hit(key="t:shared", limit=3) is True
    assert await rate_limit_hit_async(key="t:other", limit=3) is False


async def test_async_rate_limit_counts_concurrent_events_exactly(redis_cache) -> None:
    results = await asyncio.gather(*(rate_limit_hit_async(key="t:burst", limit=5) for _ in range(40)))
    assert results.count(False) == 5


async def test_async_rate_limit_window_expires(redis_cache) -> None:
    assert await rate_limit_hit_async(key="t:window", limit=1, window_seconds=1) is False
    assert await rate_limit_hit_async(key="t:window", limit=1, window_seconds=1) is True
    await asyncio.sleep(2.1)  # the next window, and the old counter has expired
    assert await rate_limit_hit_async(key="t:window", limit=1, window_seconds=1) is False


async def test_async_rate_limit_fails_open_when_redis_is_unreachable(settings) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    assert await rate_limit_hit_async(key="t:down", limit=0) is False


async def test_async_breaker_follows_the_shared_state(redis_cache, settings) -> None:
    model = f"claude-test-{uuid.uuid4().hex[:8]}"
    assert await breaker.allow_async(model) is True
    for _ in range(settings.LLM_BREAKER_FAILURE_THRESHOLD):
        breaker.record_failure(model)  # another process sees the failures
    assert breaker.is_open(model)
    assert await breaker.allow_async(model) is False
    await breaker.record_success_async(model)  # e.g. a probe answered in this process
    assert not breaker.is_open(model)
    assert await breaker.allow_async(model) is True


async def test_async_success_resets_failures_counted_elsewhere(redis_cache, settings) -> None:
    model = f"claude-test-{uuid.uuid4().hex[:8]}"
    for _ in range(settings.LLM_BREAKER_FAILURE_THRESHOLD - 1):
        breaker.record_failure(model)
    await breaker.record_success_async(model)
    breaker.record_failure(model)  # not consecutive with the earlier ones: stays closed
    assert not breaker.is_open(model)


async def test_async_half_open_circuit_lets_exactly_one_probe_through(redis_cache, settings) -> None:
    model = f"claude-test-{uuid.uuid4().hex[:8]}"
    settings.LLM_BREAKER_RESET_SECONDS = 1
    for _ in range(settings.LLM_BREAKER_FAILURE_THRESHOLD):
        breaker.record_failure(model)
    await asyncio.sleep(1.1)  # half-open
    allowed = await asyncio.gather(*(breaker.allow_async(model) for _ in range(10)))
    assert allowed.count(True) == 1


async def test_async_breaker_allows_when_redis_is_unreachable(settings) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    assert await breaker.allow_async("claude-test-down") is True
    await breaker.record_success_async("claude-test-down")  # logged, not raised
