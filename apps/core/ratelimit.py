"""Fixed-window rate limiting on the Django cache (Redis when configured, so limits hold across processes)."""

import logging
import time

from django.core.cache import cache

from apps.core.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)


def rate_limit_hit(*, key: str, limit: int, window_seconds: int = 60) -> bool:
    """Count one event for `key`; True when this event goes over `limit` within the current window.

    Fails open: with the counter store (Redis) unreachable, nothing is limited rather than everything
    refused — an outage of the cache must not lose users' messages.
    """
    try:
        return _count(key=key, limit=limit, window_seconds=window_seconds)
    except CACHE_ERRORS:
        logger.warning("rate limit store unavailable; not limiting %s", key.split(":", 1)[0])
        return False


def _count(*, key: str, limit: int, window_seconds: int) -> bool:
    window = int(time.time() // window_seconds)
    cache_key = f"ratelimit:{key}:{window}"
    # add() is atomic on Redis and locmem: only the first event of a window creates the counter.
    if cache.add(cache_key, 1, timeout=window_seconds + 1):
        return limit < 1
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add() and incr()
        cache.add(cache_key, 1, timeout=window_seconds + 1)
        count = 1
    return count > limit
