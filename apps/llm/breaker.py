"""A circuit breaker per model, kept in the Django cache (shared across processes through Redis).

closed ──failing for S seconds, ≥ N failures──► open ──probe interval──► half-open
  ▲                                              ▲                           │ one probe at a time
  └────────────────── probe succeeds ────────────┴──── probe fails ◄─────────┘ (the interval doubles)

It opens on a failure *streak* — failures with no success in between — that has both lasted
`LLM_BREAKER_FAILING_SECONDS` and counted `LLM_BREAKER_FAILURE_THRESHOLD` failures. A count alone
cannot tell a burst from an outage: twenty questions hitting a seconds-long overload at once make
twenty failures in a millisecond, and an open breaker then drains the upstream's backlog one probe per
interval, while the questions' own retries (honouring retry-after) would have ridden it out in about
a second. Time tells them apart: a burst is over before the streak is old enough, an outage is not.
A streak with a quiet spell longer than `LLM_BREAKER_FAILING_SECONDS` between two failures starts
again, so a stray failure minutes ago does not make the next burst look old. 0 opens on the count
alone (every streak is old enough).

While open, the gateway skips the model and goes straight to its fallback, so an outage costs one
probe per interval instead of a failed attempt (and its backoff) per request. The interval adapts:
`LLM_BREAKER_PROBE_SECONDS` right after opening, so a blip of a few seconds is noticed to be over
within seconds, then doubled by each failed probe up to `LLM_BREAKER_RESET_SECONDS`, so a long outage
costs a handful of probes, not one every second. 0 turns it off (every interval is the full period).

The cache is the only state: `cache.add` is atomic on every backend, so it serves as the
"one probe at a time" lock; `cache.incr` counts failures atomically on Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from django.conf import settings
from django.core.cache import BaseCache, cache

from apps.core.cache import CACHE_ERRORS, async_redis, cache_call, cache_is_local, redis_key

logger = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
KEY_PREFIX = "llm:breaker"
# Failures older than this are forgotten even without a success in between.
FAILURE_MEMORY_SECONDS = 600
# Every key a breaker writes (a success deletes them all).
STATE_KEYS = ("failures", "since", "last_failure", "opened_at", "interval", "probe")


def _key(model: str, name: str) -> str:
    return f"{KEY_PREFIX}:{model}:{name}"


@dataclass
class CircuitBreaker:
    model: str
    store: BaseCache = field(default_factory=lambda: cache)
    clock: Callable[[], float] = time.time

    def _key(self, name: str) -> str:
        return _key(self.model, name)

    @property
    def reset_seconds(self) -> float:
        return float(settings.LLM_BREAKER_RESET_SECONDS)

    @property
    def failing_seconds(self) -> float:
        return max(0.0, float(settings.LLM_BREAKER_FAILING_SECONDS))

    def first_interval(self) -> float:
        """The probe interval right after the circuit opens (from closed)."""
        probe = float(settings.LLM_BREAKER_PROBE_SECONDS)
        return min(probe, self.reset_seconds) if probe > 0 else self.reset_seconds

    def interval(self) -> float:
        """The current wait between opening and the next probe (the full period if none is stored)."""
        stored = self.store.get(self._key("interval"))
        return min(float(stored), self.reset_seconds) if stored is not None else self.reset_seconds

    def state(self) -> State:
        values = self.store.get_many([self._key("opened_at"), self._key("interval")])
        opened_at = values.get(self._key("opened_at"))
        if opened_at is None:
            return "closed"
        interval = values.get(self._key("interval"))
        interval = min(float(interval), self.reset_seconds) if interval is not None else self.reset_seconds
        if self.clock() - float(opened_at) < interval:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        """May a request go to this model now? In half-open, True for exactly one caller (the probe)."""
        state = self.state()
        if state == "closed":
            return True
        if state == "open":
            return False
        # The lock outlives a probe that crashed without reporting, but not forever.
        probe_ttl = max(1, int(settings.LLM_TOTAL_TIMEOUT_SECONDS) + 1)
        return bool(self.store.add(self._key("probe"), self.clock(), timeout=probe_ttl))

    def record_success(self) -> None:
        """Close the circuit (a probe or a normal call worked)."""
        if self.store.get(self._key("opened_at")) is None and not self.store.get(self._key("failures")):
            return  # the common case: already closed, no writes
        self.store.delete_many([self._key(name) for name in STATE_KEYS])

    def record_failure(self) -> None:
        """Count a failure; open once the streak is old and long enough, or re-open for twice as long
        when the probe failed."""
        state = self.state()
        if state == "open":
            # An attempt that started before the circuit opened: it tells nothing new, and re-opening
            # here would push the probe back (or, doubling, make a burst look like a long outage).
            return
        if state == "half_open":
            self._open(min(2 * self.interval(), self.reset_seconds))
            return
        now = self.clock()
        failures, since = self._count_failure(now)
        if failures >= settings.LLM_BREAKER_FAILURE_THRESHOLD and now - since >= self.failing_seconds:
            self._open(self.first_interval())

    def _count_failure(self, now: float) -> tuple[int, float]:
        """Add a failure to the current streak: (its failures, when it started).

        Not one atomic step across processes (`cache.add` makes one of them start a new streak, but two
        that both see a quiet spell may both restart it): a race delays the opening by a moment, never
        opens it early.
        """
        failures_key, since_key, last_key = self._key("failures"), self._key("since"), self._key("last_failure")
        values = self.store.get_many([since_key, last_key])
        last = values.get(last_key)
        if self.failing_seconds and last is not None and now - float(last) > self.failing_seconds:
            self.store.delete_many([failures_key, since_key])  # a quiet spell: a new streak
            values.pop(since_key, None)
        self.store.set(last_key, now, timeout=FAILURE_MEMORY_SECONDS)
        if self.store.add(failures_key, 0, timeout=FAILURE_MEMORY_SECONDS):
            self.store.set(since_key, now, timeout=FAILURE_MEMORY_SECONDS)  # this failure starts the streak
            since = now
        else:
            since = float(values.get(since_key, now))
        try:
            failures = self.store.incr(failures_key)
        except ValueError:  # expired between add and incr
            self.store.set(failures_key, 1, timeout=FAILURE_MEMORY_SECONDS)
            failures = 1
        return failures, since

    def release_probe(self) -> None:
        """The half-open probe ended without telling whether the model recovered (the request itself was
        refused, e.g. a 400): let the next caller probe instead of waiting for the lock to expire."""
        self.store.delete(self._key("probe"))

    def _open(self, interval: float) -> None:
        # Kept well past the reset period so half-open is observable; a success deletes them. The
        # interval is written first: a reader that sees the new opened_at never pairs it with no interval.
        timeout = int(self.reset_seconds * 20) + 60
        self.store.set(self._key("interval"), interval, timeout=timeout)
        self.store.set(self._key("opened_at"), self.clock(), timeout=timeout)
        self.store.delete_many([self._key(name) for name in ("failures", "since", "last_failure", "probe")])


def breaker_for(model: str) -> CircuitBreaker:
    return CircuitBreaker(model=model)


# The breaker lives in the shared cache (Redis when configured). If that store is unreachable, the
# breaker behaves as closed and forgets failures: a Redis outage must not stop every answer.
_STORE_ERRORS = CACHE_ERRORS


def is_open(model: str) -> bool:
    """True while the model is skipped (open or half-open); read by /metrics."""
    try:
        return breaker_for(model).state() != "closed"
    except _STORE_ERRORS:
        return False


def allow(model: str) -> bool:
    try:
        return breaker_for(model).allow()
    except _STORE_ERRORS:
        logger.warning("circuit breaker store unavailable; allowing %s", model)
        return True


def record_success(model: str) -> None:
    try:
        breaker_for(model).record_success()
    except _STORE_ERRORS:
        logger.warning("circuit breaker store unavailable; success of %s not recorded", model)


def record_inconclusive(model: str) -> None:
    """An attempt failed for a reason that says nothing about the model's health (see `release_probe`)."""
    try:
        breaker_for(model).release_probe()
    except _STORE_ERRORS:
        logger.warning("circuit breaker store unavailable; probe of %s not released", model)


def record_failure(model: str) -> None:
    try:
        breaker_for(model).record_failure()
    except _STORE_ERRORS:
        logger.warning("circuit breaker store unavailable; failure of %s not recorded", model)


# Async code (the chat gateway) checks the breaker before every attempt and reports every success: the
# common case, a closed circuit, is one read on the event loop (apps.core.cache explains why no thread).


async def allow_async(model: str) -> bool:
    """`allow` for async code."""
    if cache_is_local():
        return allow(model)
    try:
        opened = await async_redis().exists(redis_key(_key(model, "opened_at")))
    except _STORE_ERRORS:
        logger.warning("circuit breaker store unavailable; allowing %s", model)
        return True
    if not opened:  # closed
        return True
    return await cache_call(allow, model)  # open or half-open: the full check, with its probe lock


async def record_success_async(model: str) -> None:
    """`record_success` for async code."""
    if cache_is_local():
        record_success(model)
        return
    try:
        opened_at, failures = await async_redis().mget(
            [redis_key(_key(model, "opened_at")), redis_key(_key(model, "failures"))]
        )
    except _STORE_ERRORS:
        logger.warning("circuit breaker store unavailable; success of %s not recorded", model)
        return
    if opened_at is None and not int(failures or 0):
        return  # closed, no failures counted: nothing to write (as in `CircuitBreaker.record_success`)
    await cache_call(record_success, model)
