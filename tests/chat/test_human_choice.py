"""A new conversation offers the assistant or a person; a person chosen up front gets the first question."""

import datetime as dt
import uuid

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation
from apps.staffing.models import Holiday, OpeningHours, SupportSchedule
from apps.staffing.services import presence_mark
from tests.chat.conftest import ChatSocket
from tests.chat.test_handoffs import chat_calls, messages_of

pytestmark = pytest.mark.django_db(transaction=True)


async def ask(socket: ChatSocket, text: str, answerer: object, client_id: str | None = None) -> str:
    client_id = client_id or str(uuid.uuid4())
    await socket.send({"type": "message", "text": text, "client_id": client_id, "answerer": answerer})
    return client_id


@database_sync_to_async
def conversation(conversation_id: str) -> Conversation:
    return Conversation.objects.get(pk=conversation_id)


@database_sync_to_async
def tickets_of(conversation_id: str) -> list[SupportTicket]:
    return list(SupportTicket.objects.filter(conversation_id=conversation_id))


async def test_a_person_chosen_up_front_gets_the_first_question_and_the_next(chat_env, customer, settings):
    settings.SUPPORT_EMAIL_ADDRESS = "help@acme.test"
    socket = await ChatSocket.open(customer)
    opened = await socket.receive()
    assert opened["offer_choice"] is True
    conversation_id = opened["id"]
    calls = chat_calls(chat_env)

    client_id = await ask(socket, "My card was charged twice", "person")
    ack = await socket.receive()
    assert (ack["type"], ack["client_id"], ack["reply_id"]) == ("ack", client_id, None)
    state = await socket.receive()
    assert state["type"] == "conversation_state" and state["humans_answer"] and state["status"] == "needs_human"
    assert "No one from our team is online" in state["notice"]  # how the customer will be answered
    assert await socket.communicator.receive_nothing(timeout=0.3)  # no answer from the assistant

    stored = await conversation(conversation_id)
    assert (stored.handoff_source, stored.handoff_reason, stored.title) == (
        "user",
        "Customer chose a person",
        "My card was charged twice",
    )
    [ticket] = await tickets_of(conversation_id)
    assert ticket.source == "handoff" and "My card was charged twice" in ticket.body
    assert [m.to for m in mail.outbox] == [["help@acme.test"]]

    await socket.ask("It was on the 3rd")  # the next question goes to the person as well
    assert (await socket.receive())["reply_id"] is None
    assert await socket.communicator.receive_nothing(timeout=0.3)
    assert [(m.role, m.text) for m in await messages_of(conversation_id)] == [
        ("user", "My card was charged twice"),
        ("user", "It was on the 3rd"),
    ]
    assert chat_calls(chat_env) == calls  # not even a drafted call
    await socket.close()

    # Resumed, the conversation no longer offers the choice; a resend of the first question is a duplicate.
    again = await ChatSocket.open(customer, conversation=conversation_id)
    assert (await again.receive())["offer_choice"] is False
    await ask(again, "My card was charged twice", "person", client_id=client_id)
    resent = await again.receive()
    assert (resent["type"], resent["duplicate"], resent["reply_id"]) == ("ack", True, None)
    assert len(await messages_of(conversation_id)) == 2 and len(await tickets_of(conversation_id)) == 1
    await again.close()


async def test_with_an_agent_online_the_customer_is_told_a_person_joins_shortly(chat_env, customer):
    agent = await database_sync_to_async(get_user_model().objects.create_user)(username="dana")
    await database_sync_to_async(presence_mark)(agent=agent, channel_name="inbox.test")
    socket = await ChatSocket.open(customer)
    await socket.receive()
    await ask(socket, "Hello, a person please", "person")
    assert (await socket.receive())["reply_id"] is None
    state = await socket.receive()
    assert state["notice"] == "A person from our team will join shortly. Your messages now go to them."
    assert mail.outbox == []  # the agent online sees it in the inbox
    await socket.close()


@database_sync_to_async
def closed_today() -> None:
    schedule = SupportSchedule.objects.create(time_zone="UTC")
    for day in range(7):
        OpeningHours.objects.create(schedule=schedule, weekday=day, opens=dt.time(0), closes=dt.time(23, 59))
    Holiday.objects.create(schedule=schedule, date=timezone.now().date(), name="Team day")


async def test_outside_business_hours_the_customer_is_told_when_people_are_back(chat_env, customer):
    await closed_today()
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await ask(socket, "Can someone call me?", "person")
    assert (await socket.receive())["reply_id"] is None
    state = await socket.receive()
    assert state["notice"].startswith("Our team is away; they are back ") and "keep your request" in state["notice"]
    assert [m.role for m in await messages_of(conversation_id)] == ["user"]  # the request is kept
    await socket.close()


async def test_the_assistant_chosen_up_front_answers_and_a_later_choice_changes_nothing(chat_env, customer):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await ask(socket, "How do refunds work?", "assistant")
    frames = await socket.until_terminal()
    assert frames[0]["reply_id"] and frames[-1]["status"] == "complete"

    # The choice is made up front: on a later question the assistant goes on answering.
    await ask(socket, "And for annual plans?", "person")
    frames = await socket.until_terminal()
    assert frames[0]["reply_id"] and frames[-1]["status"] == "complete"
    assert (await conversation(conversation_id)).status == "open"
    assert await tickets_of(conversation_id) == []
    await socket.close()


async def test_a_hidden_choice_is_not_offered_and_a_person_is_refused(chat_env, customer, settings):
    settings.CHAT_OFFER_HUMAN_CHOICE = False
    socket = await ChatSocket.open(customer)
    opened = await socket.receive()
    assert opened["offer_choice"] is False
    client_id = await ask(socket, "A person please", "person")
    error = await socket.receive()
    assert (error["type"], error["code"], error["client_id"]) == ("error", "choice_unavailable", client_id)
    assert await messages_of(opened["id"]) == []  # nothing stored: the client keeps the text
    assert (await conversation(opened["id"])).status == "open"

    # Without an answerer (or with the assistant) the question is answered as usual.
    await socket.ask("A person please")
    frames = await socket.until_terminal()
    assert frames[0]["reply_id"] and frames[-1]["status"] == "complete"
    await socket.close()


@pytest.mark.parametrize("answerer", ["Person", "human", "agent", 1, True, ["person"], {"who": "person"}])
async def test_an_unknown_answerer_is_refused_and_nothing_is_stored(chat_env, customer, answerer):
    socket = await ChatSocket.open(customer)
    opened = await socket.receive()
    client_id = await ask(socket, "Hello", answerer)
    error = await socket.receive()
    assert (error["type"], error["code"], error["client_id"]) == ("error", "invalid_answerer", client_id)
    assert await messages_of(opened["id"]) == []
    assert (await conversation(opened["id"])).status == "open"

    # The socket stays usable; the same question with a valid choice goes through.
    await ask(socket, "Hello", "person", client_id=client_id)
    assert (await socket.receive())["type"] == "ack"
    await socket.close()


async def test_a_question_right_after_the_choice_starts_no_model_call(chat_env, customer):
    socket = await ChatSocket.open(customer)
    await socket.receive()
    calls = chat_calls(chat_env)
    await ask(socket, "First, for a person", "person")
    await socket.ask("Second, right away")  # whether or not conversation_state was handled first: no draft
    frames = [await socket.receive() for _ in range(3)]
    assert sorted(f["type"] for f in frames) == ["ack", "ack", "conversation_state"]
    assert all(f["reply_id"] is None for f in frames if f["type"] == "ack")
    assert chat_calls(chat_env) == calls
    await socket.close()
