"""Two server processes sharing PostgreSQL and the Redis channel layer/cache (issue 7, scale-out).

A user who reconnects to the other process resumes the same conversation and sees its stored answer;
the per-user rate limit is shared, because its counters live in Redis.
"""

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model

from apps.accounts.models import CustomerAccount
from apps.prompts.services import prompt_seed_defaults
from tests.reliability.conftest import ask, free_port, open_socket, server_env, start_server, stop_process

REDIS_DB_URL_SUFFIX = "/15"  # a database index of its own, flushed by this test
RATE_LIMIT = 3

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def two_servers(redis_url: str, llm_upstream) -> Iterator[tuple[int, int]]:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("DATABASE_URL is not PostgreSQL; two processes need a shared server database")
    shared_redis = redis_url.rsplit("/", 1)[0] + REDIS_DB_URL_SUFFIX
    redis.Redis.from_url(shared_redis).flushdb()
    env = server_env(llm_upstream.base_url, REDIS_URL=shared_redis, CHAT_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT))
    ports = (free_port(), free_port())
    processes = []
    try:
        for port in ports:
            processes.append(start_server(
                ["-m", "uvicorn", "supportbot.asgi:application", "--port", str(port),
                 "--ws-per-message-deflate", "false", "--lifespan", "off", "--log-level", "warning",
                 "--timeout-graceful-shutdown", "10"],
                port, env,
            ))
        yield ports
    finally:
        for process in processes:
            stop_process(process)


@pytest.fixture
def bob(db, settings) -> object:
    # The servers run the default hashers; the test settings' fast MD5 hasher is unknown to them.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    prompt_seed_defaults()
    user = get_user_model().objects.create_user(username="scale-bob", password="demo-password")
    CustomerAccount.objects.create(user=user, plan="pro", billing_status="active", language="en")
    return user


def log_in(port: int) -> str:
    """Log in through the real login form; returns the session cookie header."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/accounts/login/",
            data={"username": "scale-bob", "password": "demo-password", "csrfmiddlewaretoken": token},
            headers={"Referer": f"http://127.0.0.1:{port}/accounts/login/"},
        )
        assert response.status_code == 302, response.text
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def test_reconnecting_to_the_other_process_resumes_the_conversation(two_servers, bob) -> None:
    port_a, port_b = two_servers
    cookie = log_in(port_a)  # the session lives in the shared database: valid on both processes

    async def scenario() -> tuple[dict, list[dict], dict]:
        ws = await open_socket(port_a, cookie)
        conversation = json.loads(await ws.recv())
        frames = await ask(ws, "How do I reset my password?")
        await ws.close()
        ws = await open_socket(port_b, cookie, conversation["id"])
        resumed = json.loads(await ws.recv())
        await ws.close()
        return conversation, frames, resumed

    conversation, frames, resumed = asyncio.run(scenario())
    done = frames[-1]
    assert done["type"] == "done" and done["status"] == "complete"
    shown = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert resumed["type"] == "conversation" and resumed["id"] == conversation["id"]
    stored = {m["id"]: m for m in resumed["messages"]}
    assert stored[done["message_id"]]["text"] == shown
    assert [m["role"] for m in resumed["messages"]] == ["user", "assistant"]


def test_rate_limit_is_shared_between_processes(two_servers, bob) -> None:
    port_a, port_b = two_servers
    cookie = log_in(port_a)

    async def scenario() -> list[dict]:
        ws_a = await open_socket(port_a, cookie)
        await ws_a.recv()
        outcomes = [(await ask(ws_a, f"question {i}"))[-1] for i in range(RATE_LIMIT - 1)]
        await ws_a.close()
        ws_b = await open_socket(port_b, cookie)
        await ws_b.recv()
        outcomes += [(await ask(ws_b, f"question {i}"))[-1] for i in range(2)]
        await ws_b.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert [o["type"] for o in outcomes[:RATE_LIMIT]] == ["done"] * RATE_LIMIT
    assert outcomes[RATE_LIMIT]["type"] == "error" and outcomes[RATE_LIMIT]["code"] == "rate_limited"
