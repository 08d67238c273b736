"""Two server processes sharing PostgreSQL and the Redis channel layer/cache (issue 7, scale-out).

A user who reconnects to the other process resumes the same conversation and sees its stored answer;
the per-user rate limit and each model's circuit breaker are shared, because their state lives in Redis.
"""

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model

from apps.accounts.models import CustomerAccount
from apps.chat.models import Message
from apps.prompts.services import prompt_seed_defaults
from tests.conftest import set_faults
from tests.reliability.conftest import ask, free_port, open_socket, server_env, start_server, stop_process

REDIS_DB_URL_SUFFIX = "/15"  # a database index of its own, flushed by this test
RATE_LIMIT = 3
BREAKER_THRESHOLD = 3  # consecutive failures that open a model's circuit
MAX_ATTEMPTS = 2  # attempts per model and answer
QUESTIONS_ON_B = 10

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]


@contextmanager
def serving_two_processes(redis_url: str, upstream, **server_settings: str) -> Iterator[tuple[int, int]]:
    """Two uvicorn processes on free ports, sharing this run's PostgreSQL database and one Redis database."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("DATABASE_URL is not PostgreSQL; two processes need a shared server database")
    shared_redis = redis_url.rsplit("/", 1)[0] + REDIS_DB_URL_SUFFIX
    redis.Redis.from_url(shared_redis).flushdb()
    env = server_env(upstream.base_url, REDIS_URL=shared_redis, **server_settings)
    ports = (free_port(), free_port())
    processes = []
    try:
        for port in ports:
            processes.append(
                start_server(
                    [
                        "-m",
                        "uvicorn",
                        "supportbot.asgi:application",
                        "--port",
                        str(port),
                        "--ws-per-message-deflate",
                        "false",
                        "--lifespan",
                        "off",
                        "--log-level",
                        "warning",
                        "--timeout-graceful-shutdown",
                        "10",
                    ],
                    port,
                    env,
                )
            )
        yield ports
    finally:
        for process in processes:
            stop_process(process)


@pytest.fixture
def two_servers(redis_url: str, llm_upstream) -> Iterator[tuple[int, int]]:
    with serving_two_processes(redis_url, llm_upstream, CHAT_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT)) as ports:
        yield ports


@pytest.fixture
def two_servers_fast_breaker(redis_url: str, llm_upstream) -> Iterator[tuple[int, int]]:
    """Both processes open a model's circuit after BREAKER_THRESHOLD failures and keep it open for the test."""
    with serving_two_processes(
        redis_url,
        llm_upstream,
        CHAT_RATE_LIMIT_PER_MINUTE="1000",
        LLM_BREAKER_FAILURE_THRESHOLD=str(BREAKER_THRESHOLD),
        LLM_BREAKER_RESET_SECONDS="120",  # longer than the test: B must find the circuit open, not half-open
        LLM_BREAKER_PROBE_SECONDS="0",
        LLM_BREAKER_FAILING_SECONDS="0",  # open on the count: the test is about sharing the state, not when
        LLM_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        LLM_BACKOFF_INITIAL_SECONDS="0.01",
        METRICS_TOKEN="",
    ) as ports:
        yield ports


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


def circuit_open_on(port: int, model: str) -> bool:
    """The model's circuit as one process reports it on /metrics (read from its cache at each scrape)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    match = re.search(rf'^supportbot_circuit_open{{model="{re.escape(model)}"}} (\S+)$', text, re.MULTILINE)
    assert match, text
    return float(match.group(1)) == 1.0


def attempts_on(upstream, model: str) -> int:
    """Messages requests the emulator has received for `model`, whatever it answered."""
    stats = httpx.get(f"{upstream.base_url}/_control/stats", timeout=5).json()
    return sum(stats["by_model"].get(model, {}).values())


def test_circuit_breaker_is_shared_between_processes(two_servers_fast_breaker, bob, llm_upstream) -> None:
    """A opens the circuit of a failing model; B, which never called it, skips it straight to the fallback."""
    port_a, port_b = two_servers_fast_breaker
    broken, fallback = settings.LLM_MODELS["sonnet"], settings.LLM_MODELS["haiku"]  # a Pro customer's route
    set_faults(llm_upstream, {"per_model": {broken: {"error_rates": {"529": 1.0}, "retry_after_seconds": 0}}})
    cookie = log_in(port_a)

    async def one_question(port: int, index: int) -> list[dict]:
        async with open_socket(port, cookie) as ws:  # a conversation of its own, as another user's would be
            await ws.recv()  # the conversation frame
            return await ask(ws, f"Question {index}: how do I reset my password?")

    async def until_open_on_a() -> list[list[dict]]:
        runs = []
        while not circuit_open_on(port_a, broken):
            assert len(runs) < BREAKER_THRESHOLD, "A's failures did not open the circuit"
            runs.append(await one_question(port_a, len(runs)))
        return runs

    async def on_b() -> list[list[dict]]:
        # One after the other: a user has one answer in flight at a time (a second one is refused as busy).
        return [await one_question(port_b, index) for index in range(QUESTIONS_ON_B)]

    runs_a = asyncio.run(until_open_on_a())
    attempts_from_a = attempts_on(llm_upstream, broken)
    assert BREAKER_THRESHOLD <= attempts_from_a < BREAKER_THRESHOLD + MAX_ATTEMPTS  # A stopped once it opened
    assert [run[-1]["model"] for run in runs_a] == [fallback] * len(runs_a)  # A's users got the fallback's answer
    assert circuit_open_on(port_b, broken)  # B has never called the model, yet reports its circuit open

    runs_b = asyncio.run(on_b())

    # B saw A's open circuit: at most one probe per 10 of its requests reached the broken model.
    assert attempts_on(llm_upstream, broken) - attempts_from_a <= QUESTIONS_ON_B // 10
    for run in runs_b:
        terminal = [frame for frame in run if frame["type"] in ("done", "error")]
        assert terminal == [run[-1]], run  # exactly one terminal outcome
        done = terminal[0]
        assert done["type"] == "done", done
        assert (done["status"], done["model"]) == ("complete", fallback) or done["status"] == "degraded", done
    replies = Message.objects.filter(role="assistant", pk__in=[run[-1]["message_id"] for run in runs_b])
    stored = {reply.pk: reply for reply in replies.select_related("reply_to")}
    assert len(stored) == QUESTIONS_ON_B  # one stored answer per question, as each user was told
    for run in runs_b:
        reply = stored[run[-1]["message_id"]]
        assert reply.status == run[-1]["status"]
        assert reply.reply_to.replies.count() == 1  # and no second answer to the same question
