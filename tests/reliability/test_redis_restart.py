"""Redis restarts while users chat: the channel layer, cache-backed limits and breakers recover,
and a message sent while Redis is down is still answered and stored (issue 7)."""

import asyncio
import shutil
import subprocess
import time

import pytest
import redis

from apps.chat.models import Message
from tests.chat.conftest import session_cookie
from tests.reliability.conftest import ask, free_port, open_socket, server_env, start_server, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

REDIS_SERVER = shutil.which("redis-server")


class DisposableRedis:
    """A redis-server of our own on a free port, so restarting it disturbs nothing else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def disposable_redis():
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    instance = DisposableRedis()
    instance.start()
    yield instance
    instance.stop()


async def chat_across_a_restart(port: int, cookie: str, redis_server: DisposableRedis) -> list[list[dict]]:
    """One socket stays open while Redis goes down and comes back (empty) under it."""
    async with open_socket(port, cookie) as ws:
        await ws.recv()
        before = await ask(ws, "How do I reset my password?")
        redis_server.stop()
        await asyncio.sleep(0.5)  # the consumer's layer listener notices the outage
        during = await ask(ws, "How do I export my data?")
        redis_server.start()  # same port, empty: a restart that lost everything
        after = await ask(ws, "What does error E-1042 mean?")
        return [before, during, after]


def test_chat_survives_a_redis_restart(customer, llm_upstream, disposable_redis) -> None:
    port = free_port()
    server = start_server(
        [
            "-m",
            "uvicorn",
            "supportbot.asgi:application",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--ws-per-message-deflate",
            "false",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "10",
        ],  # as `manage.py serve` bounds it in production
        port,
        server_env(llm_upstream.base_url, REDIS_URL=disposable_redis.url),
    )
    cookie = session_cookie(customer).decode()
    try:
        phases = asyncio.run(chat_across_a_restart(port, cookie, disposable_redis))
    finally:
        stop_process(server)
    for frames in phases:
        done = frames[-1]
        assert done["type"] == "done" and done["status"] == "complete", frames[-2:]
        stored = Message.objects.get(pk=done["message_id"])
        assert stored.text == "".join(f["text"] for f in frames if f["type"] == "delta")
    assert Message.objects.filter(role="user").count() == 3  # no question lost while Redis was down
