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
    settings.SUPPORT_SITE_URL = "http://testserver.acme"
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
    assert f"Answer in the inbox: http://testserver.acme/inbox/c/{conversation_id}/" in mail.outbox[0].body

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


async def test_an_agents_message_sent_while_the_customer_reconnects_is_not_lost(chat_env, customer, monkeypatch):
    """The agent replies after the reconnecting socket read the transcript, before it could have joined
    the conversation's group: the customer still sees the reply, once."""
    from apps.chat import consumers

    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.close()
    agent = await make_agent()
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    read_transcript = consumers._conversation_open_sync

    def transcript_then_agent_replies(*args, **kwargs):
        opened = read_transcript(*args, **kwargs)
        handoffs.agent_message_send(conversation_id=conversation_id, agent=agent, text="Sent meanwhile")
        return opened

    monkeypatch.setattr(consumers, "_conversation_open_sync", transcript_then_agent_replies)
    again = await ChatSocket.open(customer, conversation=conversation_id)
    opened = await again.receive()
    assert opened["type"] == "conversation" and opened["messages"] == []
    added = await again.receive(timeout=3)
    assert (added["type"], added["message"]["text"]) == ("message_added", "Sent meanwhile")
    assert await again.communicator.receive_nothing(timeout=0.3)
    await again.close()


async def test_an_agents_message_already_in_the_transcript_is_not_sent_again(chat_env, customer, monkeypatch):
    """The agent replies while the reconnecting socket is subscribed but before it reads the transcript:
    the transcript has the reply, and the live copy that reached the socket meanwhile is not shown twice."""
    from apps.chat import consumers

    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    await socket.close()
    agent = await make_agent()
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    read_transcript = consumers._conversation_open_sync

    def agent_replies_then_transcript(*args, **kwargs):
        handoffs.agent_message_send(conversation_id=conversation_id, agent=agent, text="Sent meanwhile")
        return read_transcript(*args, **kwargs)

    monkeypatch.setattr(consumers, "_conversation_open_sync", agent_replies_then_transcript)
    again = await ChatSocket.open(customer, conversation=conversation_id)
    opened = await again.receive()
    assert [m["text"] for m in opened["messages"]] == ["Sent meanwhile"]
    assert await again.communicator.receive_nothing(timeout=0.3)
    await again.close()


async def test_a_socket_refused_a_conversation_gets_none_of_its_messages(
    chat_env, customer, other_customer, monkeypatch
):
    """Joining the group before the conversation is authorised leaks nothing to someone else's socket."""
    from apps.chat import consumers

    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    agent = await make_agent()
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    assert (await socket.receive())["type"] == "conversation_state"
    read_transcript = consumers._conversation_open_sync

    def agent_replies_then_refused(*args, **kwargs):
        handoffs.agent_message_send(conversation_id=conversation_id, agent=agent, text="For alice only")
        return read_transcript(*args, **kwargs)

    monkeypatch.setattr(consumers, "_conversation_open_sync", agent_replies_then_refused)
    intruder = await ChatSocket.open(other_customer, conversation=conversation_id)
    refused = await intruder.receive()
    assert (refused["type"], refused["code"]) == ("error", "conversation_not_found")
    assert await intruder.receive_close() == consumers.CLOSE_NOT_FOUND
    assert await intruder.communicator.receive_nothing(timeout=0.3)
    assert (await socket.receive())["message"]["text"] == "For alice only"
    await socket.close()
