"""One stream, many watchers, for tools: every socket on a conversation sees the progress lines, the
cards and their decisions — the customer's other tab, a page reloaded mid-answer, an agent in the
inbox, a socket held by another server process — and a card is decided once. What came of a decision
is a line of the conversation, stored as shown, and part of the next question's history."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.accounts.models import CustomerAccount
from apps.actions.models import ActionRecord
from apps.chat import events, services, tool_turns
from apps.chat.answer_run import AnswerRun
from apps.chat.models import Conversation, Message
from tests.chat.conftest import ChatSocket, shown_text
from tests.chat.test_tool_turns import alice, tool_env  # noqa: F401 (fixtures)
from tests.conftest import received_requests, set_faults
from tests.inbox.conftest import InboxSocket, make_agent

pytestmark = pytest.mark.django_db(transaction=True)

CANCEL = "Please cancel my subscription"


def _of_type(frames: list[dict], kind: str) -> list[dict]:
    return [frame for frame in frames if frame["type"] == kind]


async def _until(socket: ChatSocket, kind: str) -> list[dict]:
    frames = [await socket.receive()]
    while frames[-1]["type"] != kind:
        frames.append(await socket.receive())
    return frames


@database_sync_to_async
def _cancel_at_period_end(user) -> bool:
    return CustomerAccount.objects.get(user=user).cancel_at_period_end


@database_sync_to_async
def _outcome_lines(conversation_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id, action__isnull=False))


async def test_a_card_decided_in_one_tab_is_decided_in_every_tab_and_runs_once(tool_env, alice):  # noqa: F811
    first = await ChatSocket.open(alice)
    conversation_id = (await first.receive())["id"]
    second = await ChatSocket.open(alice, conversation=conversation_id)
    await second.receive()
    await first.ask(CANCEL)
    card = _of_type(await first.until_terminal(), "confirmation_requested")[0]
    assert _of_type(await second.until_terminal(), "confirmation_requested") == [card]

    await first.send({"type": "decision", "action_id": card["action_id"], "confirm": True})
    decided = await first.receive()
    assert (decided["type"], decided["decision"], decided["status"]) == ("action_decided", "confirmed", "succeeded")
    assert await second.receive() == decided  # the other tab's card changes too
    assert await first.communicator.receive_nothing(timeout=0.2)  # the deciding tab has it once

    # The other tab clicks too (it raced, or was slow): a clear error, and nothing runs again.
    await second.send({"type": "decision", "action_id": card["action_id"], "confirm": True})
    refused = await second.receive()
    assert (refused["type"], refused["code"], refused["action_id"], refused["decision"]) == (
        "error",
        "already_decided",
        card["action_id"],
        "confirmed",
    )
    assert "already confirmed" in refused["message"]
    await second.send({"type": "decision", "action_id": card["action_id"], "confirm": False})
    assert (await second.receive())["code"] == "already_decided"
    assert await first.communicator.receive_nothing(timeout=0.2)
    for socket in (first, second):
        await socket.close()
    assert await _cancel_at_period_end(alice) is True
    statuses = await database_sync_to_async(lambda: list(ActionRecord.objects.values_list("status", flat=True)))()
    assert statuses == ["succeeded"]

    # What came of it is one line of the conversation, exactly as shown, also after a reload.
    [line] = await _outcome_lines(conversation_id)
    assert line.text == decided["message"] == decided["outcome"]["text"] and "Done" in line.text
    assert (decided["outcome"]["id"], decided["outcome"]["role"]) == (line.pk, "assistant")
    reloaded = await ChatSocket.open(alice, conversation=conversation_id)
    hello = await reloaded.receive()
    await reloaded.close()
    assert hello["messages"][-1] == {**decided["outcome"], "feedback": None}
    assert hello["messages"][-1]["action_id"] == card["action_id"]


async def test_the_next_answer_knows_what_came_of_the_card(tool_env, alice):  # noqa: F811
    socket = await ChatSocket.open(alice)
    await socket.receive()
    await socket.ask(CANCEL)
    card = _of_type(await socket.until_terminal(), "confirmation_requested")[0]
    await socket.send({"type": "decision", "action_id": card["action_id"], "confirm": False})
    declined = await socket.receive()
    assert declined["message"] == "Cancelled: nothing was changed."

    await socket.ask("Thanks, what else can you do?")
    await socket.until_terminal()
    await socket.close()
    sent = [entry["body"] for entry in received_requests(tool_env) if entry["path"] == "/v1/messages"]
    assistant_said = [
        block["text"]
        for message in sent[-1]["messages"]
        if message["role"] == "assistant"
        for block in message["content"]
        if block.get("type") == "text"
    ]
    assert assistant_said[-1] == "Cancelled: nothing was changed."


async def test_a_page_reloaded_mid_answer_gets_the_progress_and_the_card_and_can_decide_it(
    tool_env,  # noqa: F811
    alice,  # noqa: F811
):
    set_faults(tool_env, {"token_ms": 60})
    socket = await ChatSocket.open(alice)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(CANCEL)
    before = await _until(socket, "tool_finished")
    before.append(await socket.receive())  # the answer's words have started
    assert before[-1]["type"] == "delta"
    await socket.close()  # the reload

    again = await ChatSocket.open(alice, conversation=conversation_id)
    hello = await again.receive()
    assert hello["messages"][-1]["status"] == "streaming"
    frames = await again.until_terminal()
    tool_types = ("tool_started", "confirmation_requested", "tool_finished")
    # Caught up first: the same progress line and card as the page had, then the text so far.
    assert [f for f in frames[:3]] == [f for f in before if f["type"] in tool_types]
    assert frames[3]["type"] == "delta" and frames[3]["text"].startswith(shown_text(before))
    assert frames[-1]["status"] == "complete"
    card = frames[1]

    await again.send({"type": "decision", "action_id": card["action_id"], "confirm": True})
    decided = await again.receive()
    await again.close()
    assert (decided["type"], decided["status"]) == ("action_decided", "succeeded")
    assert await _cancel_at_period_end(alice) is True


async def test_a_tab_that_joins_after_the_card_was_decided_sees_it_decided(tool_env, alice):  # noqa: F811
    set_faults(tool_env, {"token_ms": 60})
    asking = await ChatSocket.open(alice)
    conversation_id = (await asking.receive())["id"]
    await asking.ask(CANCEL)
    card = (await _until(asking, "confirmation_requested"))[-1]
    await asking.send({"type": "decision", "action_id": card["action_id"], "confirm": False})
    frames = await _until(asking, "action_decided")  # mid-answer: the answer goes on
    decided = frames[-1]

    joining = await ChatSocket.open(alice, conversation=conversation_id)
    hello = await joining.receive()
    # The transcript has the answer being written, then the line saying what came of the card.
    assert [(m["role"], m["status"]) for m in hello["messages"][-2:]] == [
        ("assistant", "streaming"),
        ("assistant", "complete"),
    ]
    assert hello["messages"][-1]["text"] == decided["message"]
    caught_up = await joining.until_terminal()
    assert caught_up[1] == card
    assert {**decided, "outcome": None} == {**_of_type(caught_up, "action_decided")[0], "outcome": None}
    await asking.until_terminal()
    for socket in (asking, joining):
        await socket.close()
    assert await _cancel_at_period_end(alice) is False


async def test_an_agent_watching_sees_the_card_and_its_decision(tool_env, alice):  # noqa: F811
    agent = await database_sync_to_async(make_agent)("dana", "Dana")
    chat = await ChatSocket.open(alice)
    conversation_id = (await chat.receive())["id"]
    dana = await InboxSocket.open(agent)
    await dana.receive()
    await dana.send({"type": "watch", "conversation": conversation_id})
    await dana.receive_type("watching")
    await chat.ask(CANCEL)
    card = _of_type(await chat.until_terminal(), "confirmation_requested")[0]
    assert (await dana.receive_type("confirmation_requested")) == card
    await dana.receive_type("done")

    await chat.send({"type": "decision", "action_id": card["action_id"], "confirm": True})
    decided = await chat.receive()
    seen = await dana.receive_type("action_decided")
    await chat.close()
    await dana.close()
    assert seen == {**decided, "conversation_id": conversation_id}


@database_sync_to_async
def _answer_written_elsewhere(user, text: str) -> tuple[str, int]:
    """A question stored with its reply streaming, as another server process leaves them."""
    conversation = services.conversation_start(user=user)
    submission = services.message_submit(conversation=conversation, text=text, client_id=None)
    return str(conversation.pk), submission.reply.pk


async def test_a_socket_of_another_process_gets_the_tool_frames_and_decisions_live(tool_env, alice):  # noqa: F811
    conversation_id, reply_id = await _answer_written_elsewhere(alice, CANCEL)
    socket = await ChatSocket.open(alice, conversation=conversation_id)
    assert (await socket.receive())["messages"][-1]["status"] == "streaming"
    layer, group = get_channel_layer(), events.conversation_group(conversation_id)
    started = {"type": "tool_started", "message_id": reply_id, "call_id": "toolu_1", "tool": "x", "progress": "…"}
    await layer.group_send(group, {"type": events.TOOL_FRAME, "origin": "another-process", "frame": started})
    assert await socket.receive() == started
    # This process's own copy is ignored (its sockets had the frame from the run), as is another reply's.
    await layer.group_send(group, {"type": events.TOOL_FRAME, "origin": events.PROCESS_ID, "frame": started})
    other = {**started, "message_id": reply_id + 100}
    await layer.group_send(group, {"type": events.TOOL_FRAME, "origin": "another-process", "frame": other})
    assert await socket.communicator.receive_nothing(timeout=0.2)
    decided = {"type": "action_decided", "action_id": 1, "decision": "confirmed", "message": "Done."}
    await layer.group_send(group, {"type": events.ACTION_DECIDED, "origin": "another-process", "frame": decided})
    assert await socket.receive() == decided
    await socket.close()


@pytest.mark.redis
async def test_decisions_reach_the_other_tab_through_redis(tool_env, alice, redis_url, settings):  # noqa: F811
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "apps.core.channel_layers.ResilientRedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    channel_layers.backends.clear()
    try:
        first = await ChatSocket.open(alice)
        conversation_id = (await first.receive())["id"]
        second = await ChatSocket.open(alice, conversation=conversation_id)
        await second.receive()
        await first.ask(CANCEL)
        card = _of_type(await first.until_terminal(), "confirmation_requested")[0]
        await second.until_terminal()
        await first.send({"type": "decision", "action_id": card["action_id"], "confirm": True})
        decided = await first.receive()
        assert await second.receive(timeout=5) == decided
        for socket in (first, second):
            await socket.close()
    finally:
        await get_channel_layer().flush()
        channel_layers.backends.clear()
    assert await _cancel_at_period_end(alice) is True
    assert await database_sync_to_async(Conversation.objects.count)() == 1


async def test_a_customer_with_a_decided_card_can_be_deleted(tool_env, alice):  # noqa: F811
    socket = await ChatSocket.open(alice)
    await socket.receive()
    await socket.ask(CANCEL)
    card = _of_type(await socket.until_terminal(), "confirmation_requested")[0]
    await socket.send({"type": "decision", "action_id": card["action_id"], "confirm": False})
    await socket.receive()
    await socket.close()

    await database_sync_to_async(alice.delete)()
    assert await database_sync_to_async(Message.objects.count)() == 0
    assert await database_sync_to_async(ActionRecord.objects.count)() == 0


class _Recorder:
    """A watcher that records what it is sent."""

    def __init__(self) -> None:
        self.frames: list[dict] = []

    async def watch_send(self, encoded: str) -> None:
        self.frames.append(json.loads(encoded))

    async def watch_terminal(self, frame: dict) -> None:
        self.frames.append(frame)


async def test_a_watcher_attaching_while_the_answer_ends_reads_the_stored_result(monkeypatch):
    """The decided cards are read before the catch-up; an answer that ends meanwhile has sent its one
    terminal frame to the watchers it had, so the newcomer is not attached to it (it would wait for a
    frame that never comes) and reads the stored reply instead."""
    reply = Message(pk=7, conversation_id=uuid.uuid4(), role="assistant")
    stored = SimpleNamespace(submission=SimpleNamespace(reply=reply))
    asking = _Recorder()
    run = AnswerRun(stored=stored, user=None, client_id=None, watchers={asking})
    card = {"type": "confirmation_requested", "message_id": 7, "action_id": 41, "tool": "t", "summary": "s"}
    run.tool_frames.append(card)
    reading, go_on = threading.Event(), threading.Event()

    def slow_read(action_ids: list[int]) -> list[dict]:
        reading.set()
        go_on.wait(5)
        return []

    monkeypatch.setattr(tool_turns, "decided_frames", slow_read)
    newcomer = _Recorder()
    attaching = asyncio.ensure_future(run.attach(newcomer, knows_reply=True))
    await asyncio.to_thread(reading.wait, 5)
    await run._end({"type": "done", "message_id": 7})  # the answer is stored and ends meanwhile
    go_on.set()
    assert await attaching is None
    assert newcomer.frames == [] and asking.frames == [{"type": "done", "message_id": 7}]


async def test_other_processes_get_the_answers_events_in_order_even_from_a_slow_layer(
    tool_env,  # noqa: F811
    alice,  # noqa: F811
    monkeypatch,
):
    """answer_started makes another process's socket follow the reply, reply_finished ends it: a tool
    frame published before the first, or after the second, would be lost there. The slow first event
    would be overtaken if the run did not publish them one after the other."""
    layer, published = get_channel_layer(), []

    class SlowLayer:
        async def group_send(self, group: str, message: dict) -> None:
            if message["type"] == events.ANSWER_STARTED:
                await asyncio.sleep(0.5)
            published.append(message["type"] if message["type"] != events.TOOL_FRAME else message["frame"]["type"])
            await layer.group_send(group, message)

    monkeypatch.setattr(events, "get_channel_layer", SlowLayer)
    socket = await ChatSocket.open(alice)
    await socket.receive()
    await socket.ask(CANCEL)
    frames = await socket.until_terminal()
    await socket.close()
    assert frames[-1]["status"] == "complete"  # the answer did not wait for the slow layer
    for _ in range(100):  # the events follow
        if events.REPLY_FINISHED in published:
            break
        await asyncio.sleep(0.05)
    assert published == [
        events.ANSWER_STARTED,
        "tool_started",
        "confirmation_requested",
        "tool_finished",
        events.REPLY_FINISHED,
    ]
