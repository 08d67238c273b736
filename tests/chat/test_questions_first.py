"""Questions being stored go before relaying more of the answers already streaming (apps.chat.streaming)."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from apps.chat import streaming
from apps.chat.models import Message
from apps.chat.streaming import QuestionsFirst, questions_first
from tests.chat.conftest import ChatSocket, shown_text
from tests.conftest import set_faults

QUESTION = "How do I download my last invoice?"


async def test_a_relay_goes_on_at_once_when_no_question_is_being_stored():
    gate = QuestionsFirst()
    await asyncio.wait_for(gate.relay_turn(), timeout=0.01)


async def test_a_relay_waits_until_the_questions_being_stored_are_stored():
    gate = QuestionsFirst()
    with gate.storing():
        with gate.storing():
            relay = asyncio.ensure_future(gate.relay_turn())
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.02)
        assert not relay.done()  # one question is still being stored
    await asyncio.wait_for(relay, timeout=0.05)


async def test_a_relay_pause_is_bounded(monkeypatch):
    """A steady flow of questions cannot starve an answer."""
    monkeypatch.setattr(streaming, "MAX_RELAY_PAUSE_SECONDS", 0.05)
    gate = QuestionsFirst()
    with gate.storing():
        await asyncio.wait_for(gate.relay_turn(), timeout=1)


async def test_one_gate_per_event_loop():
    assert questions_first() is questions_first()
    other = await asyncio.to_thread(lambda: asyncio.run(_gate_of_a_new_loop()))
    assert other is not questions_first()


async def _gate_of_a_new_loop() -> QuestionsFirst:
    return questions_first()


@pytest.mark.django_db(transaction=True)
async def test_a_streaming_answer_pauses_while_a_question_is_stored_and_ends_as_stored(chat_env, customer, monkeypatch):
    monkeypatch.setattr(streaming, "MAX_RELAY_PAUSE_SECONDS", 30.0)  # the pause lasts as long as the storing
    set_faults(chat_env, {"token_ms": 10})
    socket = await ChatSocket.open(customer)
    await socket.receive()
    await socket.ask(QUESTION)
    frames = [await socket.receive(), await socket.receive()]
    assert [frame["type"] for frame in frames] == ["ack", "delta"]

    with questions_first().storing():  # another socket's question, as the consumer marks it
        await asyncio.sleep(0.1)  # a batch already taken from the buffer may still go out
        while not await socket.communicator.receive_nothing(timeout=0.01):
            frames.append(await socket.receive())
        assert await socket.communicator.receive_nothing(timeout=0.3)  # nothing more is relayed meanwhile
    frames += await socket.until_terminal()
    await socket.close()

    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete"
    stored = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert shown_text(frames) == stored.text != ""


@pytest.mark.django_db(transaction=True)
async def test_while_one_socket_stores_a_question_the_others_answers_wait(
    chat_env, customer, other_customer, monkeypatch
):
    import time

    from apps.chat import answering

    monkeypatch.setattr(streaming, "MAX_RELAY_PAUSE_SECONDS", 30.0)
    set_faults(chat_env, {"token_ms": 10})
    store = answering._submit_and_prepare

    def slow_store(**kwargs):
        if kwargs["text"] == "Second question":
            time.sleep(0.8)  # a commit queued behind a busy process
        return store(**kwargs)

    monkeypatch.setattr(answering, "_submit_and_prepare", slow_store)
    streaming_socket, asking_socket = await ChatSocket.open(customer), await ChatSocket.open(other_customer)
    await streaming_socket.receive()
    await asking_socket.receive()
    await streaming_socket.ask(QUESTION)
    assert [(await streaming_socket.receive())["type"] for _ in range(2)] == ["ack", "delta"]

    await asking_socket.ask("Second question")
    await asyncio.sleep(0.1)  # its storage has started; a batch already taken may still go out
    while not await streaming_socket.communicator.receive_nothing(timeout=0.01):
        await streaming_socket.receive()
    assert await streaming_socket.communicator.receive_nothing(timeout=0.2)
    assert (await asking_socket.receive())["type"] == "ack"  # stored: the other answer goes on
    assert (await streaming_socket.receive(timeout=2))["type"] == "delta"
    for socket in (streaming_socket, asking_socket):
        assert (await socket.until_terminal())[-1]["status"] == "complete"
        await socket.close()
