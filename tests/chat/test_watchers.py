"""One stream, many watchers: every socket on a conversation gets the answer live, whoever asked."""

import pytest
from channels.db import database_sync_to_async

from apps.chat.models import Message
from tests.chat.conftest import ChatSocket, shown_text
from tests.conftest import set_faults

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I download my last invoice?"


@database_sync_to_async
def answer_of(conversation_id: str) -> Message:
    return Message.objects.filter(conversation_id=conversation_id, role="assistant").order_by("-id").first()


async def two_tabs(customer) -> tuple[ChatSocket, ChatSocket, str]:
    first = await ChatSocket.open(customer)
    conversation_id = (await first.receive())["id"]
    second = await ChatSocket.open(customer, conversation=conversation_id)
    assert (await second.receive())["type"] == "conversation"
    return first, second, conversation_id


async def test_a_second_tab_sees_the_question_and_the_answer_live(chat_env, customer):
    set_faults(chat_env, {"token_ms": 20})
    asking, watching, conversation_id = await two_tabs(customer)
    client_id = await asking.ask(QUESTION)
    asked = await asking.until_terminal()

    started = await watching.receive()
    assert started["type"] == "answer_started"
    assert started["question"]["text"] == QUESTION and started["question"]["client_id"] == client_id
    assert started["reply_id"] == asked[0]["reply_id"]
    watched = await watching.until_terminal()
    # Live: token by token like the asking tab, not the whole answer in one piece at the end.
    assert len([f for f in watched if f["type"] == "delta"]) > 1
    answer = await answer_of(conversation_id)
    assert shown_text(asked) == shown_text(watched) == answer.text != ""
    assert watched[-1] == asked[-1]  # the same one terminal frame
    assert await watching.communicator.receive_nothing(timeout=0.2)  # and nothing after it
    for socket in (asking, watching):
        await socket.close()


async def test_a_page_reloaded_mid_answer_gets_the_text_so_far_then_the_live_tokens(chat_env, customer):
    set_faults(chat_env, {"token_ms": 30})
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    before = [await socket.receive() for _ in range(3)]  # ack and two deltas
    assert [f["type"] for f in before] == ["ack", "delta", "delta"]
    await socket.close()  # the reload

    again = await ChatSocket.open(customer, conversation=conversation_id)
    hello = await again.receive()
    assert [(m["role"], m["status"]) for m in hello["messages"]] == [("user", "complete"), ("assistant", "streaming")]
    frames = await again.until_terminal()
    await again.close()
    deltas = [f for f in frames if f["type"] == "delta"]
    assert deltas[0]["text"].startswith(shown_text(before))  # the text so far, in one piece ...
    assert len(deltas) > 1  # ... then the tokens as they come
    answer = await answer_of(conversation_id)
    assert shown_text(frames) == answer.text and answer.status == "complete"


async def test_stop_from_another_tab_stops_the_answer_for_both(chat_env, customer):
    set_faults(chat_env, {"token_ms": 40})
    asking, watching, conversation_id = await two_tabs(customer)
    await asking.ask(QUESTION)
    assert (await asking.receive())["type"] == "ack"
    assert (await watching.receive())["type"] == "answer_started"
    first = await watching.receive()
    assert first["type"] == "delta"
    await watching.send({"type": "stop"})

    asked, watched = await asking.until_terminal(), [first, *await watching.until_terminal()]
    assert asked[-1]["status"] == watched[-1]["status"] == "stopped"
    answer = await answer_of(conversation_id)
    assert answer.status == "incomplete"
    assert shown_text(asked) == shown_text(watched) == answer.text != ""
    for socket in (asking, watching):
        await socket.close()


async def test_a_question_from_the_other_tab_while_one_streams_is_busy(chat_env, customer):
    set_faults(chat_env, {"token_ms": 40})
    asking, watching, conversation_id = await two_tabs(customer)
    await asking.ask(QUESTION)
    assert (await asking.receive())["type"] == "ack"
    assert (await watching.receive())["type"] == "answer_started"
    other_id = await watching.ask("Something else")
    frames = await watching.until_terminal()
    assert (frames[-1]["type"], frames[-1]["code"], frames[-1]["client_id"]) == ("error", "busy", other_id)
    await asking.send({"type": "stop"})
    assert (await watching.until_terminal())[-1]["status"] == "stopped"
    await asking.until_terminal()
    for socket in (asking, watching):
        await socket.close()
    questions = await database_sync_to_async(
        lambda: list(
            Message.objects.filter(conversation_id=conversation_id, role="user").values_list("text", flat=True)
        )
    )()
    assert questions == [QUESTION]


async def test_resets_reach_every_tab_and_all_show_the_stored_text(chat_env, customer):
    set_faults(chat_env, {"cut_stream_after_tokens": 6, "cut_mode": "error"})
    asking, watching, conversation_id = await two_tabs(customer)
    await asking.ask(QUESTION)
    asked = await asking.until_terminal(timeout=30)
    watched = await watching.until_terminal(timeout=30)
    assert [f for f in watched if f["type"] == "reset"]
    answer = await answer_of(conversation_id)
    assert shown_text(asked) == shown_text(watched) == answer.text
    for socket in (asking, watching):
        await socket.close()


async def test_a_tab_that_closes_mid_answer_does_not_stop_the_others(chat_env, customer):
    set_faults(chat_env, {"token_ms": 20})
    asking, watching, conversation_id = await two_tabs(customer)
    await asking.ask(QUESTION)
    assert (await asking.receive())["type"] == "ack"
    await asking.close()  # the tab that asked goes away
    watched = await watching.until_terminal()
    await watching.close()
    answer = await answer_of(conversation_id)
    assert watched[-1]["status"] == "complete" and shown_text(watched) == answer.text
