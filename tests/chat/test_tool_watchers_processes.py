"""Tools across two server processes sharing PostgreSQL and the Redis channel layer: a tab on the other
process sees the progress line and the card while the answer is written, decides it, and the tab that
asked sees it decided (docs/protocol.md, "Many sockets on one conversation")."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings

from apps.accounts.models import CustomerAccount
from apps.actions.models import ActionRecord
from apps.actions.registry import tools
from apps.prompts.services import prompt_seed_defaults, prompt_version_seed_tools
from tests.actions.factories import AccountFactory
from tests.conftest import set_faults
from tests.reliability.conftest import free_port, open_socket, server_env, start_server, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]

PASSWORD = "demo-password"


@pytest.fixture
def two_servers(redis_url: str, llm_upstream) -> Iterator[tuple[int, int]]:
    """Two uvicorn processes on this run's database and on REDIS_URL's own database (not flushed: the
    groups are named after fresh conversation ids)."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("DATABASE_URL is not PostgreSQL; two processes need a shared server database")
    env = server_env(llm_upstream.base_url, REDIS_URL=redis_url)
    ports, processes = (free_port(), free_port()), []
    try:
        for port in ports:
            args = ["-m", "uvicorn", "supportbot.asgi:application", "--port", str(port)]
            args += ["--ws-per-message-deflate", "false", "--lifespan", "off", "--log-level", "warning"]
            processes.append(start_server(args, port, env))
        yield ports
    finally:
        for process in processes:
            stop_process(process)


@pytest.fixture
def alice(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the servers' hasher
    prompt_seed_defaults()
    prompt_version_seed_tools(slug="support-assistant", tool_names=list(tools()))
    account = AccountFactory(user__username="alice-procs", user__email="alice@example.com")
    account.user.set_password(PASSWORD)
    account.user.save()
    return account.user


def log_in(port: int, username: str) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/accounts/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"http://127.0.0.1:{port}/accounts/login/"},
        )
        assert response.status_code == 302, response.text
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def receive(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=30))


async def until(ws, kind: str) -> list[dict]:
    frames = [await receive(ws)]
    while frames[-1]["type"] != kind:
        frames.append(await receive(ws))
    return frames


def test_a_tab_on_the_other_process_sees_the_card_live_and_its_decision_reaches_every_tab(
    two_servers, alice, llm_upstream
) -> None:
    port_a, port_b = two_servers
    set_faults(llm_upstream, {"token_ms": 60})  # the answer is still being written when the card is shown
    cookie = log_in(port_a, alice.username)

    async def scenario() -> dict:
        seen: dict = {}
        async with open_socket(port_a, cookie) as asking:
            conversation_id = (await receive(asking))["id"]
            async with open_socket(port_b, cookie, conversation_id) as watching:
                await receive(watching)
                await asking.send(json.dumps({"type": "message", "text": "Please cancel my subscription"}))
                seen["asked"] = await until(asking, "confirmation_requested")
                # On B, before the answer is stored: the question, the progress line, the card.
                seen["live_on_b"] = await until(watching, "confirmation_requested")
                # A page reloaded on B meanwhile has the card in its transcript (the answer is streaming).
                async with open_socket(port_b, cookie, conversation_id) as reloaded:
                    seen["reloaded"] = await receive(reloaded)
                seen["rest_on_b"] = await until(watching, "done")
                seen["rest_on_a"] = await until(asking, "done")

                card = seen["asked"][-1]
                await watching.send(json.dumps({"type": "decision", "action_id": card["action_id"], "confirm": True}))
                seen["decided_on_b"] = await receive(watching)
                seen["decided_on_a"] = await receive(asking)
                await asking.send(json.dumps({"type": "decision", "action_id": card["action_id"], "confirm": True}))
                seen["again_on_a"] = await receive(asking)
        return seen

    seen = asyncio.run(scenario())
    card = seen["asked"][-1]
    live = seen["live_on_b"]
    assert [f["type"] for f in live] == ["answer_started", "tool_started", "confirmation_requested"]
    assert live[-1] == card
    [streaming] = [m for m in seen["reloaded"]["messages"] if m["status"] == "streaming"]
    assert [a["action_id"] for a in streaming["actions"]] == [card["action_id"]]
    assert seen["rest_on_b"][0]["type"] == "tool_finished" and seen["rest_on_b"][-1]["status"] == "complete"

    decided = seen["decided_on_b"]
    assert (decided["type"], decided["status"]) == ("action_decided", "succeeded")
    assert seen["decided_on_a"] == decided
    assert (seen["again_on_a"]["code"], seen["again_on_a"]["decision"]) == ("already_decided", "confirmed")
    assert CustomerAccount.objects.get(user=alice).cancel_at_period_end is True
    assert list(ActionRecord.objects.values_list("status", flat=True)) == ["succeeded"]
