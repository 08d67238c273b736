"""Facts about Django's cache that its users need, and how async code reaches it.

Async code on the hot path of a question (the rate limit, the circuit breaker) talks to the cache's
Redis with `redis.asyncio`, on the event loop: a worker-thread hop per call waited for the GIL behind
the loop and the ORM threads (a thread that blocked on a socket needs up to the 5 ms switch interval
to get the GIL back from a busy loop), which made the upstream request of the last questions of a
500-question burst start ~1 s late (bench/ws_bench.py). Other cache calls from async code go through
`cache_call`.
"""

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import redis.asyncio
from asgiref.sync import SyncToAsync
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
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


P = ParamSpec("P")
R = TypeVar("R")

# The cache calls async code still makes through the Django cache (the breaker's failures, its checks
# while open) get threads of their own: on the event loop's default pool they would queue behind every
# socket's ORM work. A round trip holds its thread for a fraction of a millisecond, so few are enough.
_CACHE_IO = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cache-io")


async def cache_call(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `function` (which uses the cache) from async code: inline when the cache is process memory,
    else on the cache's own worker threads."""
    if cache_is_local():
        return function(*args, **kwargs)
    return await SyncToAsync(function, thread_sensitive=False, executor=_CACHE_IO)(*args, **kwargs)


# One asyncio client per event loop and server (a client's connections belong to the loop that opened them).
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, redis.asyncio.Redis]] = (
    weakref.WeakKeyDictionary()
)
# Connections per loop; callers beyond it wait for one rather than fail (redis-py's plain asyncio pool
# raises past its limit).
_ASYNC_MAX_CONNECTIONS = 50
# A Redis that stops answering must not hold a question for long: the callers fail open on a timeout.
_ASYNC_TIMEOUT_SECONDS = 2.0


def async_redis() -> redis.asyncio.Redis:
    """The running loop's asyncio client on the default cache's Redis (the cache must be a RedisCache)."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        raise TypeError("async_redis() needs the Redis cache backend.")
    url = cache._servers[0]  # the server Django's cache writes to
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(url)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=_ASYNC_MAX_CONNECTIONS,
            timeout=_ASYNC_TIMEOUT_SECONDS,
            socket_timeout=_ASYNC_TIMEOUT_SECONDS,
            socket_connect_timeout=_ASYNC_TIMEOUT_SECONDS,
        )
        client = clients[url] = redis.asyncio.Redis(connection_pool=pool)
    return client


def redis_key(key: str) -> str:
    """The Redis key under which the default cache stores `key` (its prefix and version applied)."""
    return caches["default"].make_and_validate_key(key)
