"""A Redis channel layer that rides out a Redis restart instead of killing every open socket.

With the stock layer, each consumer's background `receive` from Redis raises when Redis goes away,
and Channels then tears the whole websocket down. Here `receive` waits and reconnects with capped
backoff, and the fire-and-forget operations (send, group add/discard/send) log and carry on: the
layer carries control events, and an answer's text only while another process's socket watches it
(apps/chat/relay.py: a lost piece is asked for again, and the stored answer ends every watch); their
state is recoverable from the database — a resumed conversation reads its stored answer.

Its connection pool waits for a free connection instead of failing: redis-py's asyncio pool raises
`MaxConnectionsError` past 100 connections in use, and a burst of sockets opening at once (each
joining its session group) lost the group membership of hundreds of them (bench/ws_bench.py), so a
logout would not have reached those sockets. Its read timeout is longer than the blocking pop that
waits for messages: redis-py 8 defaults to 5 s, exactly channels_redis' pop timeout, so an idle
receive timed out on the client every 5 s (a reconnect each time, and a message the server popped
in that instant was lost with the connection).
"""

import asyncio
import logging
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool, ConnectionPool
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_LAYER_ERRORS = (RedisError, OSError)
_RECONNECT_MAX_SECONDS = 5.0
# Connections per process to one Redis; operations beyond it wait (at most _POOL_WAIT_SECONDS) for one.
POOL_MAX_CONNECTIONS = 100
_POOL_WAIT_SECONDS = 10.0
# How much longer than a blocking pop a read may take before the connection counts as dead.
_READ_MARGIN_SECONDS = 5.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> ConnectionPool:
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # a Sentinel or keyword configuration: channels_redis' own pool
            return super().create_pool(index)
        host.setdefault("socket_timeout", self.brpop_timeout + _READ_MARGIN_SECONDS)
        return BlockingConnectionPool.from_url(
            address, max_connections=POOL_MAX_CONNECTIONS, timeout=_POOL_WAIT_SECONDS, **host
        )

    async def receive(self, channel: str) -> dict[str, Any]:
        delay = 0.1
        while True:
            try:
                return await super().receive(channel)
            except _LAYER_ERRORS as error:
                # A cancellation (the consumer is closing) that raced a redis-py timeout can surface as a
                # TimeoutError; retrying then would keep a dead consumer alive and block shutdown.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise asyncio.CancelledError from error
                logger.warning("channel layer unavailable (%s); retrying in %.1fs", type(error).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._best_effort("send", super().send(channel, message))

    async def group_add(self, group: str, channel: str) -> None:
        await self._best_effort("group_add", super().group_add(group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        await self._best_effort("group_discard", super().group_discard(group, channel))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._best_effort("group_send", super().group_send(group, message))

    @staticmethod
    async def _best_effort(operation: str, call: Any) -> None:
        try:
            await call
        except _LAYER_ERRORS as error:
            logger.warning("channel layer %s failed (%s); continuing without it", operation, type(error).__name__)
