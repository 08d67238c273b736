"""Circuit breaker states, on the Django cache (and on a real Redis shared by two 'processes')."""

import pytest
from django.core.cache import cache

from apps.llm.breaker import CircuitBreaker, is_open


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def breaker_settings(settings):
    settings.LLM_BREAKER_FAILURE_THRESHOLD = 3
    settings.LLM_BREAKER_RESET_SECONDS = 30
    cache.clear()
    yield
    cache.clear()


def opened_breaker(clock: FakeClock) -> CircuitBreaker:
    """A breaker whose circuit the threshold's worth of failures (3) has just opened."""
    breaker = CircuitBreaker("claude-opus-4-6", clock=clock)
    for _ in range(3):
        breaker.record_failure()
    return breaker


def test_opens_after_threshold_consecutive_failures():
    breaker = CircuitBreaker("claude-opus-4-6", clock=FakeClock())
    for _ in range(2):
        breaker.record_failure()
        assert breaker.state() == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state() == "open"
    assert not breaker.allow()
    assert is_open("claude-opus-4-6")


def test_an_inconclusive_probe_lets_the_next_caller_probe():
    """A probe refused for its own request (a 400) neither closes nor re-opens the circuit."""
    clock = FakeClock()
    breaker = opened_breaker(clock)
    clock.now += 31
    assert breaker.allow()  # the probe
    assert not breaker.allow()
    breaker.release_probe()
    assert breaker.state() == "half_open"
    assert breaker.allow()  # the next caller probes at once, not after the probe lock's expiry
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_count():
    breaker = CircuitBreaker("claude-opus-4-6", clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state() == "closed"


def test_half_open_admits_one_probe_then_closes_on_success():
    clock = FakeClock()
    breaker = opened_breaker(clock)
    clock.now += 29
    assert not breaker.allow()
    clock.now += 2
    assert breaker.state() == "half_open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else still skips while it runs
    breaker.record_success()
    assert breaker.state() == "closed"
    assert breaker.allow() and breaker.allow()


def test_failed_probe_reopens_for_a_full_period():
    clock = FakeClock()
    breaker = opened_breaker(clock)
    clock.now += 31
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state() == "open"
    clock.now += 29
    assert not breaker.allow()
    clock.now += 2
    assert breaker.allow()


def test_models_have_separate_circuits():
    opus = CircuitBreaker("claude-opus-4-6", clock=FakeClock())
    for _ in range(3):
        opus.record_failure()
    assert CircuitBreaker("claude-sonnet-4-6", clock=FakeClock()).allow()


@pytest.mark.redis
def test_state_and_probe_lock_are_shared_through_redis(redis_url):
    from django.core.cache.backends.redis import RedisCache

    clock = FakeClock()
    # Two cache clients stand in for two worker processes.
    first = CircuitBreaker("claude-opus-test-shared", store=RedisCache(redis_url, {}), clock=clock)
    second = CircuitBreaker("claude-opus-test-shared", store=RedisCache(redis_url, {}), clock=clock)
    first.store.delete_many([first._key(n) for n in ("failures", "opened_at", "probe")])
    try:
        first.record_failure()
        second.record_failure()
        first.record_failure()
        assert second.state() == "open"
        clock.now += 31
        assert [first.allow(), second.allow()].count(True) == 1
        second.record_success()
        assert first.state() == "closed"
    finally:
        first.store.delete_many([first._key(n) for n in ("failures", "opened_at", "probe")])
