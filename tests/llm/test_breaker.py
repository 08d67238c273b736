"""Circuit breaker states, on the Django cache (and on a real Redis shared by two 'processes')."""

import pytest
from django.core.cache import cache

from apps.llm.breaker import STATE_KEYS, CircuitBreaker, is_open


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
    settings.LLM_BREAKER_FAILING_SECONDS = 0  # open on the count alone; the persistence tests set their own
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


def fail_every(breaker: CircuitBreaker, clock: FakeClock, *, seconds: float, count: int) -> None:
    """`count` failures spread evenly over `seconds` (the first one now)."""
    for index in range(count):
        if index:
            clock.now += seconds / (count - 1)
        breaker.record_failure()


def test_a_burst_of_failures_shorter_than_the_failing_time_leaves_it_closed(settings):
    """Twenty questions' first attempts, then their retries, fail within a second: no outage yet."""
    settings.LLM_BREAKER_FAILING_SECONDS = 5
    clock = FakeClock()
    breaker = CircuitBreaker("claude-opus-4-6", clock=clock)
    fail_every(breaker, clock, seconds=1.0, count=40)
    assert breaker.state() == "closed" and breaker.allow()
    breaker.record_success()  # the burst cleared: the next streak starts from nothing
    clock.now += 0.1
    fail_every(breaker, clock, seconds=4.9, count=10)
    assert breaker.state() == "closed"


def test_failures_that_persist_for_the_failing_time_open_it(settings):
    settings.LLM_BREAKER_FAILING_SECONDS = 5
    clock = FakeClock()
    breaker = CircuitBreaker("claude-opus-4-6", clock=clock)
    fail_every(breaker, clock, seconds=4.9, count=10)
    assert breaker.state() == "closed"
    clock.now += 0.1
    breaker.record_failure()  # 5 s of failing, 11 failures
    assert breaker.state() == "open" and not breaker.allow()


def test_a_long_streak_needs_the_threshold_count_too(settings):
    """Two failures five seconds apart (a quiet model, one unlucky question) are not an outage yet."""
    settings.LLM_BREAKER_FAILING_SECONDS = 5
    clock = FakeClock()
    breaker = CircuitBreaker("claude-opus-4-6", clock=clock)
    fail_every(breaker, clock, seconds=5, count=2)
    assert breaker.state() == "closed"  # old enough, but 2 failures of the 3 needed
    clock.now += 3
    breaker.record_failure()
    assert breaker.state() == "open"


def test_a_stray_failure_before_a_quiet_spell_does_not_age_the_next_burst(settings):
    settings.LLM_BREAKER_FAILING_SECONDS = 5
    clock = FakeClock()
    breaker = CircuitBreaker("claude-opus-4-6", clock=clock)
    breaker.record_failure()
    clock.now += 60  # no traffic, so no success either
    fail_every(breaker, clock, seconds=1.0, count=40)
    assert breaker.state() == "closed"


def test_a_success_in_the_middle_restarts_the_streak(settings):
    settings.LLM_BREAKER_FAILING_SECONDS = 5
    clock = FakeClock()
    breaker = CircuitBreaker("claude-opus-4-6", clock=clock)
    fail_every(breaker, clock, seconds=4, count=8)
    breaker.record_success()
    clock.now += 0.5
    fail_every(breaker, clock, seconds=4, count=8)  # 8.5 s since the first failure, 4 s since the success
    assert breaker.state() == "closed"


def test_a_failing_time_does_not_change_the_probe_schedule_once_open(settings):
    """Once open, the probes follow the interval as before: failed probes re-open it at once."""
    settings.LLM_BREAKER_FAILING_SECONDS = 5
    settings.LLM_BREAKER_PROBE_SECONDS = 2
    clock = FakeClock()
    breaker = CircuitBreaker("claude-opus-4-6", clock=clock)
    fail_every(breaker, clock, seconds=5, count=6)
    assert breaker.state() == "open"
    assert probe_times(breaker, clock, 5) == [2, 6, 14, 30, 60]


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
    names = STATE_KEYS
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
    first.store.delete_many([first._key(n) for n in STATE_KEYS])
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
        first.store.delete_many([first._key(n) for n in STATE_KEYS])


@pytest.mark.redis
def test_processes_share_one_failure_streak(redis_url, settings):
    """Failures from two processes add up to one streak: its start and its count are in Redis."""
    from django.core.cache.backends.redis import RedisCache

    settings.LLM_BREAKER_FAILING_SECONDS = 5
    clock = FakeClock()
    model = "claude-opus-test-streak"
    first = CircuitBreaker(model, store=RedisCache(redis_url, {}), clock=clock)
    second = CircuitBreaker(model, store=RedisCache(redis_url, {}), clock=clock)
    first.store.delete_many([first._key(n) for n in STATE_KEYS])
    try:
        first.record_failure()  # the streak starts in the first process
        for _ in range(4):
            clock.now += 1
            second.record_failure()  # and goes on in the second, never quiet for long
        assert first.state() == "closed"  # 4 s: not yet
        clock.now += 1
        second.record_failure()
        assert first.state() == second.state() == "open"
    finally:
        first.store.delete_many([first._key(n) for n in STATE_KEYS])
