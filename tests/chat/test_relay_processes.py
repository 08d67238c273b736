"""An answer's text across two server processes sharing PostgreSQL and the Redis channel layer: a tab,
a page reloaded and an agent's inbox on the other process get the text so far and then live text, end
showing exactly the stored reply, and a reset mid-answer reaches them (apps/chat/relay.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from apps.chat.models import Message
from apps.prompts.services import prompt_seed_defaults
from tests.actions.factories import AccountFactory
from tests.chat import test_tool_watchers_processes as processes
from tests.chat.conftest import shown_text
from tests.chat.test_tool_watchers_processes import PASSWORD, log_in, receive, until
from tests.conftest import set_faults
from tests.inbox.conftest import make_agent
from tests.reliability.conftest import open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]

two_servers = processes.two_servers  # two uvicorn processes on this run's database and REDIS_URL

QUESTION = "How do I download my last invoice?"


@pytest.fixture
def people(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the servers' hasher
    prompt_seed_defaults()
    customer = AccountFactory(user__username="carol-relay", user__email="carol@example.com").user
    agent = make_agent("dana-relay", "Dana")
    for user in (customer, agent):
        user.set_password(PASSWORD)
        user.save()
    return customer, agent


def open_inbox(port: int, cookie: str):
    return websockets.connect(
        f"ws://127.0.0.1:{port}/ws/inbox/",
        additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"},
        compression=None,
    )


def deltas_before_terminal(frames: list[dict]) -> list[dict]:
    return [f for f in frames[:-1] if f["type"] == "delta"]


def test_a_tab_a_reloaded_page_and_an_agent_on_the_other_process_see_the_answer_live(two_servers, people, llm_upstream):
    port_a, port_b = two_servers
    customer, agent = people
    set_faults(llm_upstream, {"token_ms": 40})
    customer_cookie, agent_cookie = log_in(port_a, customer.username), log_in(port_b, agent.username)

    async def scenario() -> dict:
        seen: dict = {}
        async with open_socket(port_a, customer_cookie) as asking:
            conversation_id = (await receive(asking))["id"]
            seen["conversation"] = conversation_id
            async with (
                open_socket(port_b, customer_cookie, conversation_id) as tab,
                open_inbox(port_b, agent_cookie) as inbox,
            ):
                await receive(tab)
                assert (await receive(inbox))["type"] == "inbox"
                await inbox.send(json.dumps({"type": "watch", "conversation": conversation_id}))
                await until(inbox, "watching")
                await asking.send(json.dumps({"type": "message", "text": QUESTION}))
                seen["asked"] = await until(asking, "delta")
                seen["asked"] += [await receive(asking)]  # a second piece: the answer is well under way
                async with (
                    open_socket(port_b, customer_cookie, conversation_id) as reloaded,
                    open_inbox(port_b, agent_cookie) as late_inbox,  # an agent opening it mid-answer
                ):
                    seen["reloaded_hello"] = await receive(reloaded)
                    await receive(late_inbox)
                    await late_inbox.send(json.dumps({"type": "watch", "conversation": conversation_id}))
                    seen["reloaded"], seen["late_inbox"] = await asyncio.gather(
                        until(reloaded, "done"), until(late_inbox, "reply_stored")
                    )
                seen["tab"] = await until(tab, "done")
                seen["inbox"] = await until(inbox, "reply_stored")
                seen["asked"] += await until(asking, "done")
                try:  # nothing after the one terminal frame
                    seen["tab_after"] = await asyncio.wait_for(tab.recv(), timeout=0.5)
                except TimeoutError:
                    seen["tab_after"] = None
        return seen

    seen = asyncio.run(scenario())
    reply = Message.objects.get(conversation_id=seen["conversation"], role="assistant")
    assert reply.status == "complete" and reply.text

    tab = seen["tab"]
    assert tab[0]["type"] == "answer_started"
    assert len(deltas_before_terminal(tab)) > 2  # live text, not the whole answer in one piece at the end
    assert shown_text(tab) == shown_text(seen["asked"]) == reply.text
    assert [f["type"] for f in tab].count("done") == 1 and tab[-1]["message_id"] == reply.pk
    assert seen["tab_after"] is None

    [streaming] = [m for m in seen["reloaded_hello"]["messages"] if m["role"] == "assistant"]
    assert streaming["status"] == "streaming"
    reloaded = seen["reloaded"]
    first = reloaded[0]
    assert first["type"] == "delta" and reply.text.startswith(first["text"]) and first["text"]  # the text so far
    assert len(deltas_before_terminal(reloaded)) > 1  # then more as it is written
    assert shown_text(reloaded) == reply.text

    inbox = seen["inbox"]
    started = inbox.index(next(f for f in inbox if f["type"] == "answer_started"))
    assert len(deltas_before_terminal(inbox[started:])) > 2
    assert shown_text(inbox[started:]).strip() and reply.text.startswith(shown_text(inbox[started:]))
    assert inbox[-1] == {"type": "reply_stored", "conversation_id": seen["conversation"], "reply_id": reply.pk}

    late = [f for f in seen["late_inbox"] if f["type"] not in ("watching", "queue_changed")]
    assert late[0]["type"] == "answer_started" and late[0]["reply_id"] == reply.pk
    assert late[0]["question"]["text"] == QUESTION
    assert late[1]["type"] == "delta" and late[1]["text"]  # the text so far ...
    assert len(deltas_before_terminal(late)) > 1  # ... then more as it is written
    assert reply.text.startswith(shown_text(late))


def test_a_reset_mid_answer_reaches_the_other_process(two_servers, people, llm_upstream):
    port_a, port_b = two_servers
    customer, _ = people
    # The first token waits, so the tab on B has asked for the text before any is written (under load too).
    faults = {"first_token_ms": 800, "token_ms": 40, "cut_stream_after_tokens": 6, "cut_mode": "error"}
    set_faults(llm_upstream, faults)
    cookie = log_in(port_a, customer.username)

    async def scenario() -> dict:
        async with open_socket(port_a, cookie) as asking:
            conversation_id = (await receive(asking))["id"]
            async with open_socket(port_b, cookie, conversation_id) as tab:
                await receive(tab)
                await asking.send(json.dumps({"type": "message", "text": QUESTION}))
                asked = await until(asking, "done")
                watched = await until(tab, "done")
        return {"conversation": conversation_id, "asked": asked, "tab": watched}

    seen = asyncio.run(scenario())
    reply = Message.objects.get(conversation_id=seen["conversation"], role="assistant")
    tab = seen["tab"]
    types = [f["type"] for f in tab]
    assert "reset" in types[: types.index("done")]
    assert types.index("delta") < types.index("reset")  # shown, then taken back live
    assert shown_text(tab) == shown_text(seen["asked"]) == reply.text
    assert types.count("done") == 1
