"""Fixed-window rate limiting on the Django cache (Redis when configured, so limits hold across processes)."""

import logging
import time

from django.core.cache import cache

from apps.core.cache import CACHE_ERRORS, async_redis, cache_is_local, redis_key

logger = logging.getLogger(__name__)


def rate_limit_hit(*, key: str, limit: int, window_seconds: int = 60) -> bool:
    """Count one event for `key`; True when this event goes over `limit` within the current window.

    Fails open: with the counter store (Redis) unreachable, nothing is limited rather than everything
    refused — an outage of the cache must not lose users' messages.
    """
    try:
        return _count(key=key, limit=limit, window_seconds=window_seconds)
    except CACHE_ERRORS:
        _log_unavailable(key)
        return False


async def rate_limit_hit_async(*, key: str, limit: int, window_seconds: int = 60) -> bool:
    """`rate_limit_hit` for async code: the same counter, counted on the event loop (no thread hop).

    Same fail-open rule.
    """
    if cache_is_local():  # process memory: no I/O to wait for
        return rate_limit_hit(key=key, limit=limit, window_seconds=window_seconds)
    counter = redis_key(_window_key(key, window_seconds))
    try:
        # One round trip: create the counter with its expiry if this is the window's first event, count.
        async with async_redis().pipeline(transaction=True) as pipe:
            _, count = await pipe.set(counter, 0, ex=window_seconds + 1, nx=True).incr(counter).execute()
    except CACHE_ERRORS:
        _log_unavailable(key)
        return False
    return count > limit


def _window_key(key: str, window_seconds: int) -> str:
    return f"ratelimit:{key}:{int(time.time() // window_seconds)}"


def _count(*, key: str, limit: int, window_seconds: int) -> bool:
    cache_key = _window_key(key, window_seconds)
    # add() is atomic on Redis and locmem: only the first event of a window creates the counter.
    if cache.add(cache_key, 1, timeout=window_seconds + 1):
        return limit < 1
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add() and incr()
        cache.add(cache_key, 1, timeout=window_seconds + 1)
        count = 1
    return count > limit


def _log_unavailable(key: str) -> None:
    logger.warning("rate limit store unavailable; not limiting %s", key.split(":", 1)[0])
