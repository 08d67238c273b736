"""A circuit breaker per model, kept in the Django cache (shared across processes through Redis).

closed ──N consecutive failures──► open ──probe interval──► half-open
  ▲                                  ▲                           │ one probe at a time
  └────────────── probe succeeds ────┴──── probe fails ◄─────────┘ (the interval doubles)

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
        self.store.delete_many([self._key(name) for name in ("failures", "opened_at", "interval", "probe")])

    def record_failure(self) -> None:
        """Count a failure; open at the threshold, or re-open for twice as long when the probe failed."""
        state = self.state()
        if state == "open":
            # An attempt that started before the circuit opened: it tells nothing new, and re-opening
            # here would push the probe back (or, doubling, make a burst look like a long outage).
            return
        if state == "half_open":
            self._open(min(2 * self.interval(), self.reset_seconds))
            return
        key = self._key("failures")
        self.store.add(key, 0, timeout=FAILURE_MEMORY_SECONDS)
        try:
            failures = self.store.incr(key)
        except ValueError:  # expired between add and incr
            self.store.set(key, 1, timeout=FAILURE_MEMORY_SECONDS)
            failures = 1
        if failures >= settings.LLM_BREAKER_FAILURE_THRESHOLD:
            self._open(self.first_interval())

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
        self.store.delete_many([self._key("failures"), self._key("probe")])


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
