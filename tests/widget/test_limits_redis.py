"""The widget's limits on a real Redis (REDIS_URL): the counters live there with the window's expiry,
so every process counts together; with Redis unreachable the chat still answers (fails open).

In-process on the test's database; tests/widget/test_scale_out.py runs two server processes."""

import uuid

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache

from apps.core import ratelimit
from apps.core.cache import redis_key
from apps.prompts.services import prompt_seed_defaults
from apps.widget.models import Visitor
from tests.widget.conftest import WidgetSocket
from tests.widget.test_limits import chat_requests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

CLIENT = "198.51.100.77"


@pytest.fixture
def redis_widget(llm_upstream, transactional_db, settings, redis_url):
    """The emulator, the demo prompts, and the default cache on the real Redis under a key prefix of this
    test's own (removed afterwards; clear() would flush the whole database)."""
    prefix = f"test-widget-{uuid.uuid4().hex}"
    backend = "django.core.cache.backends.redis.RedisCache"
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": redis_url, "KEY_PREFIX": prefix}}
    prompt_seed_defaults()
    client = cache._cache.get_client(write=True)
    yield client
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def counter(key: str, window_seconds: int) -> str:
    """The Redis key of `key`'s counter in the current window, as the rate limiter names it."""
    return redis_key(ratelimit._window_key(key, window_seconds))


async def test_the_visitor_and_ip_counters_are_in_redis_and_expire_with_their_window(
    redis_widget, llm_upstream, site, settings, monkeypatch
):
    settings.WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE = 1
    socket = await WidgetSocket.open(site.key, client=CLIENT)
    _, visitor = await socket.hello()
    visitor_id = await database_sync_to_async(lambda: Visitor.objects.get().pk)()
    assert (await socket.ask("Hello?"))[-1]["type"] == "done"
    assert (await socket.ask("Hello again?"))[-1]["code"] == "rate_limited"

    # Counted in Redis, where every process reads them, and gone from it after their window.
    for key, window, count in (
        (f"widget:visitor:{visitor_id}", 60, b"2"),
        (f"widget:ip:{CLIENT}", 60, b"2"),
        (f"widget:new-visitor:{CLIENT}", 3600, b"1"),
    ):
        name = counter(key, window)
        assert redis_widget.get(name) == count, key
        assert 0 < redis_widget.ttl(name) <= window + 1, key

    # The next minute is a new window: the visitor is answered again.
    now = ratelimit.time.time()
    monkeypatch.setattr(ratelimit.time, "time", lambda: now + 61)
    assert (await socket.ask("And now?"))[-1]["type"] == "done"
    await socket.close()
    assert visitor["token"] and chat_requests(llm_upstream) == 2


async def test_the_limits_hold_for_a_visitor_counted_by_another_process(redis_widget, site, settings):
    """Another process (here: its counts written straight to Redis) has used up the visitor's minute."""
    settings.WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE = 3
    socket = await WidgetSocket.open(site.key, client=CLIENT)
    await socket.hello()
    visitor_id = await database_sync_to_async(lambda: Visitor.objects.get().pk)()
    redis_widget.set(counter(f"widget:visitor:{visitor_id}", 60), 3, ex=61)
    frames = await socket.ask("Hello?")
    await socket.close()
    assert frames == [frames[-1]] and frames[-1]["code"] == "rate_limited"


async def test_new_visitors_per_address_are_counted_in_redis(redis_widget, site, settings):
    settings.WIDGET_NEW_VISITORS_PER_IP_PER_HOUR = 2
    redis_widget.set(counter(f"widget:new-visitor:{CLIENT}", 3600), 2, ex=3601)  # two made by another process
    refused = await WidgetSocket.open(site.key, client=CLIENT)
    assert (await refused.receive())["code"] == "rate_limited"
    assert await refused.receive_close() == 4429
    assert await database_sync_to_async(Visitor.objects.count)() == 0


@pytest.fixture
def redis_down(llm_upstream, transactional_db, settings):
    prompt_seed_defaults()
    backend = "django.core.cache.backends.redis.RedisCache"
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:9/0"}}


async def test_with_redis_unreachable_the_widget_still_answers(redis_down, llm_upstream, site, settings):
    settings.WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE = 0  # would refuse every question, if it could count
    socket = await WidgetSocket.open(site.key, client=CLIENT)
    await socket.hello()
    frames = await socket.ask("Hello?")
    await socket.close()
    assert frames[-1]["type"] == "done"
    assert chat_requests(llm_upstream) == 1
