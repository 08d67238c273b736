"""A Redis channel layer that rides out a Redis restart instead of killing every open socket.

With the stock layer, each consumer's background `receive` from Redis raises when Redis goes away,
and Channels then tears the whole websocket down. Here `receive` waits and reconnects with capped
backoff, and the fire-and-forget operations (send, group add/discard/send) log and carry on: the
layer only carries control events (tokens never cross it), and their state is recoverable from the
database — a resumed conversation reads its stored answer.
"""

import asyncio
import logging
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_LAYER_ERRORS = (RedisError, OSError)
_RECONNECT_MAX_SECONDS = 5.0


class ResilientRedisChannelLayer(RedisChannelLayer):
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
