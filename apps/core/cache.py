"""Facts about Django's cache that its users need."""

from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from redis.exceptions import RedisError

# What a cache call raises when the store (Redis in production) is unreachable. Every user of the cache
# fails open on these: a cache outage must not stop answers (apps.llm.breaker, apps.core.ratelimit,
# apps.accounts.selectors).
CACHE_ERRORS = (RedisError, OSError)


def cache_is_local() -> bool:
    """True when the default cache is this process's memory (no I/O): async code may call it on the loop.

    With Redis every call is a network round trip and belongs on a worker thread; a thread hop, though,
    queues for the GIL behind other sockets' ORM work, so it is skipped when there is nothing to wait for.
    """
    return isinstance(caches["default"], LocMemCache)
