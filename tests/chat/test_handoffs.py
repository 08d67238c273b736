"""A person takes over a conversation: the customer sees it live, the assistant stays quiet meanwhile."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core import mail

from apps.chat import handoffs
from apps.chat.models import Message
from tests.chat.conftest import ChatSocket
from tests.conftest import received_requests

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def make_agent(username: str = "dana"):
    return get_user_model().objects.create_user(username=username, first_name="Dana", password="x")


@database_sync_to_async
def messages_of(conversation_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("id"))


def chat_calls(upstream) -> int:
    return len([r for r in received_requests(upstream, limit=200) if r.get("path", "").endswith("/v1/messages")])


async def test_a_person_takes_over_and_hands_back(chat_env, customer, settings):
    settings.SUPPORT_EMAIL_ADDRESS = "help@acme.test"
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.ask("Hello")
    await socket.until_terminal()

    await database_sync_to_async(handoffs.conversation_human_request)(
        conversation_id=conversation_id, source="user", reason="Wants a refund"
    )
    state = await socket.receive()
    assert state["type"] == "conversation_state" and state["humans_answer"] and state["status"] == "needs_human"
    assert "keep your request" in state["notice"]  # nobody online: the customer is told how it goes on
    assert [m.to for m in mail.outbox] == [["help@acme.test"]] and "Wants a refund" in mail.outbox[0].body

    agent = await make_agent()
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    joined = await socket.receive()
    assert (joined["type"], joined["agent"], joined["notice"]) == (
        "conversation_state",
        "Dana",
        "Dana from Acme joined.",
    )

    calls = chat_calls(chat_env)
    client_id = await socket.ask("Can I get my money back?")
    ack = await socket.receive()
    assert ack["type"] == "ack" and ack["client_id"] == client_id and ack["reply_id"] is None
    assert await socket.communicator.receive_nothing(timeout=0.3)  # the assistant does not answer
    assert chat_calls(chat_env) == calls

    await database_sync_to_async(handoffs.agent_message_send)(
        conversation_id=conversation_id, agent=agent, text="Yes, refunded today."
    )
    added = await socket.receive()
    assert added["type"] == "message_added"
    assert (added["message"]["role"], added["message"]["text"], added["message"]["author"]) == (
        "agent",
        "Yes, refunded today.",
        "Dana",
    )
    stored = (await messages_of(conversation_id))[-1]
    assert (stored.role, stored.author_id, stored.text) == ("agent", agent.pk, "Yes, refunded today.")

    await database_sync_to_async(handoffs.conversation_hand_back)(conversation_id=conversation_id, agent=agent)
    back = await socket.receive()
    assert back["notice"] == "You're back with the assistant." and not back["humans_answer"]
    await socket.ask("Thanks, and where is my invoice?")
    frames = await socket.until_terminal()
    assert frames[0]["reply_id"] and frames[-1]["status"] == "complete"
    await socket.close()


async def test_only_the_owning_agent_may_reply(chat_env, customer):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    owner, other = await make_agent("dana"), await make_agent("erin")
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=owner, assignee=owner
    )
    from apps.core.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        await database_sync_to_async(handoffs.agent_message_send)(
            conversation_id=conversation_id, agent=other, text="Hi"
        )
    assert refused.value.code == "not_claimed"
    assert await messages_of(conversation_id) == []
    await socket.close()


@pytest.mark.parametrize("frame_type", ["agent_message", "note", "claim", "hand_back", "resolve"])
async def test_a_customer_cannot_send_agent_frames(chat_env, customer, frame_type):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.send({"type": frame_type, "text": "I am the agent now", "conversation": conversation_id})
    error = await socket.receive()
    assert (error["type"], error["code"]) == ("error", "unknown_type")
    assert await messages_of(conversation_id) == []
    await socket.close()


async def test_a_customer_resumes_a_conversation_with_an_agents_message(chat_env, customer):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.close()
    agent = await make_agent()
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    await database_sync_to_async(handoffs.agent_message_send)(
        conversation_id=conversation_id, agent=agent, text="Hello from Dana"
    )
    again = await ChatSocket.open(customer, conversation=conversation_id)
    opened = await again.receive()
    assert opened["type"] == "conversation" and opened["agent"] == "Dana"
    [message] = opened["messages"]
    assert (message["role"], message["text"], message["author"], message["author_id"]) == (
        "agent",
        "Hello from Dana",
        "Dana",
        agent.pk,
    )
    await again.close()
