"""The chat websocket end to end: ASGI app → consumer → gateway → SDK → offline emulator over HTTP."""

import json
import uuid

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation, Message
from tests.chat.conftest import ChatSocket, shown_text
from tests.chat.factories import ConversationFactory, exchange
from tests.conftest import set_faults

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I download my last invoice?"


@database_sync_to_async
def messages_of(conversation_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("created_at", "id"))


@database_sync_to_async
def conversation_of(conversation_id: str) -> Conversation:
    return Conversation.objects.get(pk=conversation_id)


async def test_answer_streams_in_protocol_order_and_is_stored_as_seen(chat_env, customer):
    socket = await ChatSocket.open(customer)
    hello = await socket.receive()
    assert hello["type"] == "conversation" and "messages" not in hello
    client_id = await socket.ask(QUESTION)
    frames = await socket.until_terminal()
    await socket.close()

    types = [f["type"] for f in frames]
    assert types[0] == "ack" and types[-1] == "done"
    assert set(types[1:-1]) == {"delta"}
    ack, done = frames[0], frames[-1]
    assert ack["client_id"] == client_id
    assert done["status"] == "complete" and done["model"] and done["prompt_version"] == "1.0.0"
    question, answer = await messages_of(hello["id"])
    assert (question.role, question.text, str(question.client_id)) == ("user", QUESTION, client_id)
    assert ack["message_id"] == question.pk and done["message_id"] == answer.pk
    # Deltas carry new text only: together they are exactly the stored answer.
    assert shown_text(frames) == answer.text and answer.text
    assert (answer.status, answer.reply_to_id, answer.model) == ("complete", question.pk, done["model"])
    conversation = await conversation_of(hello["id"])
    assert conversation.title == QUESTION and conversation.prompt_version_id is not None


async def test_resent_client_id_after_reconnect_gets_stored_answer_without_duplicate(chat_env, customer):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    client_id = await socket.ask(QUESTION)
    first = await socket.until_terminal()
    await socket.close()

    again = await ChatSocket.open(customer, conversation=conversation_id)
    await again.receive()
    await again.ask(QUESTION, client_id=client_id)
    second = await again.until_terminal()
    await again.close()

    assert second[0]["type"] == "ack" and second[0]["message_id"] == first[0]["message_id"]
    assert second[-1]["message_id"] == first[-1]["message_id"]
    assert shown_text(second) == shown_text(first)
    assert len(await messages_of(conversation_id)) == 2


async def test_resume_sends_the_stored_transcript(chat_env, customer):
    conversation = await database_sync_to_async(ConversationFactory)(user=customer)
    await database_sync_to_async(exchange)(conversation, "Hi", "Hello! How can I help?")
    socket = await ChatSocket.open(customer, conversation=str(conversation.id))
    hello = await socket.receive()
    await socket.close()
    assert hello["id"] == str(conversation.id)
    assert [(m["role"], m["text"]) for m in hello["messages"]] == [
        ("user", "Hi"),
        ("assistant", "Hello! How can I help?"),
    ]


@pytest.mark.parametrize("which", ["someone_elses", "garbage", "unknown"])
async def test_conversation_that_is_not_yours_is_refused_without_data(chat_env, customer, other_customer, which):
    theirs = await database_sync_to_async(ConversationFactory)(user=other_customer)
    await database_sync_to_async(exchange)(theirs, "My secret order 4711", "Noted.")
    requested = {"someone_elses": str(theirs.id), "garbage": "'; drop table--", "unknown": str(uuid.uuid4())}[which]
    socket = await ChatSocket.open(customer, conversation=requested)
    frame = await socket.receive()
    assert frame["type"] == "error" and frame["code"] == "conversation_not_found"
    assert "4711" not in str(frame)
    assert await socket.receive_close() == 4404


async def test_unauthenticated_socket_gets_error_and_4401(chat_env):
    socket = await ChatSocket.open(None)
    assert (await socket.receive())["code"] == "unauthenticated"
    assert await socket.receive_close() == 4401


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "malformed"),
        ("[1, 2]", "malformed"),
        ({"type": "dance"}, "unknown_type"),
        ({"text": "no type"}, "unknown_type"),
        ({"type": "message", "text": "   ", "client_id": str(uuid.uuid4())}, "empty_message"),
        ({"type": "message", "text": "x" * 4001, "client_id": str(uuid.uuid4())}, "message_too_long"),
        ({"type": "message", "text": "hi", "client_id": "not-a-uuid"}, "invalid_client_id"),
        # ASCII on the wire ("\\ud800"), but JSON's escape decodes to a lone surrogate: unstorable, unsendable.
        (json.dumps({"type": "message", "text": "hi \ud800 there", "client_id": str(uuid.uuid4())}), "invalid_text"),
        ({"type": "message", "text": "hi \u0000 there", "client_id": str(uuid.uuid4())}, "invalid_text"),
        # Issue 14: a type that is not a string was a TypeError (unhashable) answered as server_error,
        ({"type": ["message"], "text": "x"}, "unknown_type"),
        ({"type": {"a": 1}}, "unknown_type"),
        # deep nesting a RecursionError, and non-standard JSON was accepted.
        ('{"type": "message", "text": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}", "malformed"),
        ('{"type": "message", "text": "x", "n": NaN}', "malformed"),
        ('{"type": "message", "text": "x", "n": -Infinity}', "malformed"),
        ('{"type": "message", "text": "x", "n": 1e999}', "malformed"),
        ('{"type": "stop", "type": "message", "text": "x"}', "malformed"),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_socket_keeps_working(chat_env, customer, frame, code):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.send(frame)
    error = await socket.receive()
    assert error["type"] == "error" and error["code"] == code and error["message"]
    assert await messages_of(conversation_id) == []
    await socket.ask("Still there?")
    assert (await socket.until_terminal())[-1]["type"] == "done"
    await socket.close()


async def test_odd_frames_log_no_traceback(chat_env, customer, caplog):
    socket = await ChatSocket.open(customer)
    await socket.receive()
    for frame in ({"type": ["message"], "text": "x"}, "[" * 100_000 + "]" * 100_000, '{"type": NaN}'):
        await socket.send(frame)
        assert (await socket.receive())["code"] in ("unknown_type", "malformed")
    await socket.close()
    assert not [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")]


async def test_a_client_id_reused_with_other_text_is_refused_and_the_resend_still_acked(chat_env, customer):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    client_id = await socket.ask(QUESTION)
    first = await socket.until_terminal()
    assert first[-1]["type"] == "done"

    await socket.ask("Something else entirely", client_id=client_id)
    error = await socket.receive()
    assert (error["type"], error["code"], error["client_id"]) == ("error", "client_id_reused", client_id)
    assert error["message_id"] == first[0]["message_id"]

    await socket.ask(QUESTION, client_id=client_id)  # a true resend is still a duplicate
    ack = await socket.receive()
    assert ack["type"] == "ack" and ack["duplicate"] and ack["message_id"] == first[0]["message_id"]
    await socket.close()
    stored = await messages_of(conversation_id)
    assert [m.text for m in stored][:1] == [QUESTION] and len(stored) == 2  # nothing dropped, nothing added


async def test_a_question_the_server_cannot_store_gets_an_error_to_resend_and_the_socket_stays(
    chat_env, customer, monkeypatch
):
    from django.db import OperationalError

    from apps.chat import answering

    store = answering._submit_and_prepare

    def database_down(**kwargs):
        raise OperationalError("could not connect to server")

    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    monkeypatch.setattr(answering, "_submit_and_prepare", database_down)
    client_id = await socket.ask(QUESTION)
    error = await socket.receive()
    assert (error["type"], error["code"], error["client_id"]) == ("error", "server_error", client_id)
    assert await messages_of(conversation_id) == []

    monkeypatch.setattr(answering, "_submit_and_prepare", store)  # the database is back: resend
    await socket.ask(QUESTION, client_id=client_id)
    frames = await socket.until_terminal()
    await socket.close()
    assert frames[0]["type"] == "ack" and not frames[0]["duplicate"] and frames[-1]["status"] == "complete"


async def test_binary_frame_is_malformed(chat_env, customer):
    socket = await ChatSocket.open(customer)
    await socket.receive()
    await socket.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await socket.receive())["code"] == "malformed"
    await socket.close()


@pytest.mark.usefixtures("one_rate_limit_window")
async def test_flood_is_rate_limited_per_user(chat_env, customer, settings):
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 3
    socket = await ChatSocket.open(customer)
    await socket.receive()
    codes = []
    for _ in range(5):
        await socket.send({"type": "dance"})
        codes.append((await socket.receive())["code"])
    await socket.close()
    assert codes == ["unknown_type"] * 3 + ["rate_limited"] * 2


async def test_stop_mid_answer_keeps_the_partial_text_as_incomplete(chat_env, customer):
    set_faults(chat_env, {"token_ms": 40})
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    assert (await socket.receive())["type"] == "ack"
    first = await socket.receive()
    assert first["type"] == "delta"
    await socket.send({"type": "stop"})
    frames = [first, *await socket.until_terminal()]
    await socket.close()

    done = frames[-1]
    assert done["type"] == "done" and done["status"] == "stopped"
    _, answer = await messages_of(conversation_id)
    assert answer.status == "incomplete"
    assert answer.text == shown_text(frames) and answer.text


async def test_second_message_while_streaming_is_busy(chat_env, customer):
    set_faults(chat_env, {"token_ms": 40})
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    assert (await socket.receive())["type"] == "ack"
    second_id = await socket.ask("And another thing")
    frames = await socket.until_terminal()
    busy = [f for f in frames if f["type"] == "error"]
    assert busy[0]["code"] == "busy" and busy[0]["client_id"] == second_id
    await socket.send({"type": "stop"})
    await socket.until_terminal()
    await socket.close()
    assert [m.text for m in await messages_of(conversation_id) if m.role == "user"] == [QUESTION]


async def test_upstream_down_stores_question_apologises_and_opens_a_ticket(chat_env, customer):
    set_faults(chat_env, {"error_rates": {"529": 1.0}})
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    frames = await socket.until_terminal(timeout=30)
    await socket.close()

    done = frames[-1]
    assert done["type"] == "done" and done["status"] == "degraded" and done["ticket_id"]
    question, answer = await messages_of(conversation_id)
    assert question.text == QUESTION  # the question survives the outage
    assert answer.status == "degraded" and answer.text == shown_text(frames)
    ticket = await database_sync_to_async(SupportTicket.objects.get)(pk=done["ticket_id"])
    assert (ticket.source, ticket.conversation_id, ticket.user_id) == ("degraded", conversation_id, customer.pk)
    assert QUESTION in ticket.body
    assert (await conversation_of(conversation_id)).status == "needs_human"


async def test_reset_is_forwarded_and_the_stored_text_restarts_too(chat_env, customer):
    set_faults(chat_env, {"cut_stream_after_tokens": 6, "cut_mode": "error"})
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    frames = await socket.until_terminal(timeout=30)
    await socket.close()

    resets = [f for f in frames if f["type"] == "reset"]
    assert resets and resets[0]["reason"]
    assert frames[-1]["type"] == "done"
    _, answer = await messages_of(conversation_id)
    # After a reset the client shows only the restarted text; the stored answer is the same text.
    assert answer.text == shown_text(frames)
    assert len(answer.text) < sum(len(f["text"]) for f in frames if f["type"] == "delta")


async def test_disconnect_mid_answer_finishes_and_reconnect_gets_the_result(chat_env, customer):
    set_faults(chat_env, {"token_ms": 30})
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    await socket.receive()  # ack
    assert (await socket.receive())["type"] == "delta"
    await socket.close()

    again = await ChatSocket.open(customer, conversation=conversation_id)
    hello = await again.receive()
    # The answer is still being written by the first socket's task: the transcript says so ...
    assert [(m["role"], m["status"]) for m in hello["messages"]] == [("user", "complete"), ("assistant", "streaming")]
    frames = await again.until_terminal()  # ... and its result arrives once it is stored.
    await again.close()
    _, answer = await messages_of(conversation_id)
    assert answer.status == "complete"
    assert frames[-1]["type"] == "done" and frames[-1]["message_id"] == answer.pk
    assert shown_text(frames) == answer.text


async def test_next_question_right_after_done_is_accepted(chat_env, customer):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask(QUESTION)
    first = await socket.until_terminal()
    await socket.ask("And where do I change my card?")  # sent the moment `done` arrives
    second = await socket.until_terminal()
    await socket.close()
    assert (first[-1]["type"], second[0]["type"], second[-1]["type"]) == ("done", "ack", "done")
    assert [m.role for m in await messages_of(conversation_id)] == ["user", "assistant", "user", "assistant"]


async def test_an_overload_shows_retrying_then_the_answer(chat_env, customer, settings):
    """Issue 14, part 4: within the retry budget the customer sees `retrying`, then an answer — no ticket."""
    from apps.accounts.models import SupportTicket
    from tests.conftest import set_faults

    settings.LLM_RETRY_BUDGET_SECONDS = 8
    settings.LLM_BREAKER_FAILURE_THRESHOLD = 1
    settings.LLM_BREAKER_RESET_SECONDS = 1.0
    set_faults(chat_env, {"force_errors": [{"status": 529, "count": 8}], "retry_after_seconds": 0.1})
    socket = await ChatSocket.open(customer)
    await socket.receive()
    client_id = await socket.ask(QUESTION)
    frames = await socket.until_terminal()
    await socket.close()
    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "ack" and "retrying" in kinds and kinds.index("retrying") < kinds.index("delta")
    retrying = frames[kinds.index("retrying")]
    assert retrying["client_id"] == client_id and retrying["message_id"] == frames[0]["reply_id"]
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete"
    assert not await database_sync_to_async(SupportTicket.objects.exists)()
