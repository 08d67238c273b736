"""The Redis channel layer under a burst of sockets and while idle (apps.core.channel_layers)."""

import asyncio
import uuid

import pytest

from apps.core.channel_layers import POOL_MAX_CONNECTIONS, ResilientRedisChannelLayer

pytestmark = pytest.mark.redis


@pytest.fixture
def layer(redis_url):
    return ResilientRedisChannelLayer(hosts=[redis_url], prefix=f"test-{uuid.uuid4().hex}")


async def test_a_burst_of_sockets_joins_its_groups_past_the_pool_size(layer, caplog) -> None:
    """More group joins at once than the pool has connections wait for one instead of failing (which
    left those sockets out of their session group: a logout would not have closed them)."""
    count = POOL_MAX_CONNECTIONS * 3
    channels = [await layer.new_channel() for _ in range(count)]
    await asyncio.gather(*(layer.group_add("burst", channel) for channel in channels))
    assert "failed" not in caplog.text
    await layer.group_send("burst", {"type": "chat.ping"})
    received = await asyncio.wait_for(asyncio.gather(*(layer.receive(channel) for channel in channels)), 30)
    assert [message["type"] for message in received] == ["chat.ping"] * count
    await layer.flush()


async def test_an_idle_receive_waits_without_timing_out(layer, caplog) -> None:
    """A receive that outlasts the blocking pop neither errors nor loses the next message.

    redis-py 8's default 5 s read timeout equals channels_redis' 5 s pop: every idle pop timed out on
    the client (a reconnect, and a message popped by the server in that instant was lost)."""
    channel = await layer.new_channel()

    async def send_later() -> None:
        await asyncio.sleep(layer.brpop_timeout + 1)
        await layer.send(channel, {"type": "chat.late"})

    sender = asyncio.ensure_future(send_later())
    message = await asyncio.wait_for(layer.receive(channel), layer.brpop_timeout + 10)
    await sender
    assert message["type"] == "chat.late"
    assert "unavailable" not in caplog.text
    await layer.flush()


def test_reads_wait_longer_than_the_blocking_pop(layer) -> None:
    pool = layer.create_pool(0)
    assert pool.connection_kwargs["socket_timeout"] > layer.brpop_timeout
