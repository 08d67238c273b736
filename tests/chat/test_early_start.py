"""The upstream call starts while the question is being stored (docs/architecture.md, "Starting the answer
while the question is stored"): what the client sees and what is stored must not change because of it.

End to end: ASGI app → consumer → gateway → SDK → the offline emulator over HTTP.
"""

import time
import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import services
from apps.chat.models import Conversation, Message
from apps.llm.models import LLMCall
from tests.chat.conftest import ChatSocket, shown_text
from tests.chat.factories import exchange

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I download my last invoice?"


def chat_requests(upstream) -> list[dict]:
    """The /v1/messages requests the emulator received, oldest first (logged on arrival)."""
    return [e for e in upstream.state.request_log.recent(200) if e.get("path") == "/v1/messages"]


def user_turns(entry: dict) -> list[str]:
    """The text of every message of a logged request, in order."""
    texts = []
    for message in entry["body"]["messages"]:
        content = message["content"]
        texts.append(content if isinstance(content, str) else "".join(b.get("text", "") for b in content))
    return texts


def record_whether_the_request_came_first(upstream, monkeypatch) -> list[bool]:
    """For each question stored from now on: had the emulator already received its request?"""
    store = services.message_submit
    answers: list[bool] = []

    def store_after_checking(**kwargs):
        # Runs on the worker thread that stores the question, before it does.
        expected = len(answers) + 1
        deadline = time.monotonic() + 3
        while len(chat_requests(upstream)) < expected and time.monotonic() < deadline:
            time.sleep(0.005)
        answers.append(len(chat_requests(upstream)) >= expected)
        return store(**kwargs)

    monkeypatch.setattr(services, "message_submit", store_after_checking)
    return answers


async def test_the_request_is_on_its_way_before_the_question_is_committed(chat_env, customer, monkeypatch):
    upstream = chat_env
    came_first = record_whether_the_request_came_first(upstream, monkeypatch)
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    frames = await socket.until_terminal()
    await socket.close()

    assert came_first == [True]
    assert frames[0]["type"] == "ack" and frames[-1]["status"] == "complete"
    assert len(chat_requests(upstream)) == 1  # the early call was kept: no second request
    question, answer = await database_sync_to_async(
        lambda: list(Message.objects.filter(conversation_id=conversation_id).order_by("id"))
    )()
    assert shown_text(frames) == answer.text and answer.text
    assert frames[0]["message_id"] == question.pk and frames[-1]["message_id"] == answer.pk
    # Its call is logged against the reply, although it started before the reply row existed.
    calls = await database_sync_to_async(lambda: list(LLMCall.objects.filter(task_type="chat")))()
    assert [(c.message_id, c.status) for c in calls] == [(answer.pk, "ok")]


async def test_a_follow_up_question_also_starts_early_with_the_new_history(chat_env, customer, monkeypatch):
    upstream = chat_env
    came_first = record_whether_the_request_came_first(upstream, monkeypatch)
    socket = await ChatSocket.open(customer)
    await socket.receive()
    await socket.ask("Hi")
    first = await socket.until_terminal()
    await socket.ask(QUESTION)
    second = await socket.until_terminal()
    await socket.close()

    assert came_first == [True, True]
    assert first[-1]["status"] == second[-1]["status"] == "complete"
    requests = chat_requests(upstream)
    assert len(requests) == 2  # one call per question: the context reloaded after the first answer matched
    history = user_turns(requests[-1])
    assert "Hi" in history[0] and history[1] == shown_text(first) and QUESTION in history[-1]


async def test_a_draft_from_an_outdated_context_is_dropped_before_the_user_sees_it(chat_env, customer):
    upstream = chat_env
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    # Another tab answers in this conversation after this socket read its context.
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    await database_sync_to_async(exchange)(conversation, "Asked in another tab", "Answered there")

    await socket.ask(QUESTION)
    frames = await socket.until_terminal()
    await socket.close()

    assert "reset" not in [f["type"] for f in frames]  # nothing of the outdated draft was shown
    assert frames[-1]["status"] == "complete"
    answered = chat_requests(upstream)[-1]
    assert "Asked in another tab" in user_turns(answered)[0] and "Answered there" == user_turns(answered)[1]
    stored = await database_sync_to_async(
        lambda: Message.objects.filter(conversation_id=conversation_id, role="assistant").order_by("-id").first()
    )()
    assert stored.text == shown_text(frames) and stored.status == "complete"


async def test_a_resent_question_this_socket_knows_starts_no_upstream_call(chat_env, customer):
    upstream = chat_env
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    client_id = str(uuid.uuid4())
    await socket.ask(QUESTION, client_id=client_id)
    await socket.until_terminal()
    await socket.close()
    calls_before = len(chat_requests(upstream))

    again = await ChatSocket.open(customer, conversation=conversation_id)
    await again.receive()
    await again.ask(QUESTION, client_id=client_id)
    frames = await again.until_terminal()
    await again.close()

    assert frames[0]["duplicate"] is True and frames[-1]["type"] == "done"
    assert len(chat_requests(upstream)) == calls_before
