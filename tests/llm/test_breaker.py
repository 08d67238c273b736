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
    settings.LLM_BREAKER_PROBE_SECONDS = 0  # a fixed 30 s interval; the adaptive tests set their own
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


def probe_times(breaker: CircuitBreaker, clock: FakeClock, probes: int) -> list[float]:
    """Seconds after opening at which each of `probes` failing probes was let through."""
    opened, times = clock.now, []
    while len(times) < probes:
        clock.now += 0.5
        if breaker.allow():
            times.append(clock.now - opened)
            breaker.record_failure()
    return times


def test_the_probe_interval_starts_short_and_doubles_up_to_the_reset_period(settings):
    settings.LLM_BREAKER_PROBE_SECONDS = 2
    clock = FakeClock()
    breaker = opened_breaker(clock)
    assert breaker.state() == "open"
    # Intervals 2, 4, 8, 16, then capped at 30: probes at 2, 6, 14, 30, 60, 90 s after opening.
    assert probe_times(breaker, clock, 6) == [2, 6, 14, 30, 60, 90]


def test_a_success_starts_the_next_outage_at_the_short_interval(settings):
    settings.LLM_BREAKER_PROBE_SECONDS = 2
    clock = FakeClock()
    breaker = opened_breaker(clock)
    probe_times(breaker, clock, 4)  # the interval has grown to 30 s
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    for _ in range(3):
        breaker.record_failure()
    clock.now += 1.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()


def test_a_failure_while_open_does_not_push_the_probe_back(settings):
    """An attempt that started before the circuit opened fails late: the probe is still due on time."""
    settings.LLM_BREAKER_PROBE_SECONDS = 2
    clock = FakeClock()
    breaker = opened_breaker(clock)
    clock.now += 1.5
    breaker.record_failure()
    clock.now += 0.6
    assert breaker.allow()


@pytest.mark.redis
def test_two_processes_share_the_interval_and_send_one_probe_per_interval(redis_url, settings):
    """Two cache clients (two processes) race for every probe of a growing schedule: one wins each."""
    from concurrent.futures import ThreadPoolExecutor

    from django.core.cache.backends.redis import RedisCache

    settings.LLM_BREAKER_PROBE_SECONDS = 2
    clock = FakeClock()
    model = "claude-opus-test-adaptive"
    first = CircuitBreaker(model, store=RedisCache(redis_url, {}), clock=clock)
    second = CircuitBreaker(model, store=RedisCache(redis_url, {}), clock=clock)
    names = ("failures", "opened_at", "interval", "probe")
    first.store.delete_many([first._key(n) for n in names])
    try:
        for _ in range(3):
            first.record_failure()
        opened, probes = clock.now, []
        with ThreadPoolExecutor(max_workers=2) as pool:
            while len(probes) < 5:
                clock.now += 0.5
                # Each "process" polls four times at the same instant, as waiting questions do.
                allowed = list(pool.map(lambda b: [b.allow() for _ in range(4)], [first, second] * 2))
                winners = [b for b, granted in zip([first, second] * 2, allowed, strict=True) if any(granted)]
                assert sum(g.count(True) for g in allowed) == len(winners) <= 1
                if winners:
                    probes.append(clock.now - opened)
                    # The probe fails in whichever process made it; the other sees the doubled interval.
                    winners[0].record_failure()
        assert probes == [2, 6, 14, 30, 60]
        assert second.interval() == first.interval() == 30
    finally:
        first.store.delete_many([first._key(n) for n in names])


@pytest.mark.redis
def test_state_and_probe_lock_are_shared_through_redis(redis_url):
    from django.core.cache.backends.redis import RedisCache

    clock = FakeClock()
    # Two cache clients stand in for two worker processes.
    first = CircuitBreaker("claude-opus-test-shared", store=RedisCache(redis_url, {}), clock=clock)
    second = CircuitBreaker("claude-opus-test-shared", store=RedisCache(redis_url, {}), clock=clock)
    first.store.delete_many([first._key(n) for n in ("failures", "opened_at", "interval", "probe")])
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
        first.store.delete_many([first._key(n) for n in ("failures", "opened_at", "interval", "probe")])
