"""The inbox socket: agents only; new handoffs, messages and notes reach every agent live; customers never
get notes; an agent watching a conversation sees the assistant's answer token by token."""

import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import handoffs
from apps.staffing.selectors import agents_online_count
from tests.chat.conftest import ChatSocket
from tests.inbox.conftest import InboxSocket, client_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_customers_and_visitors_are_refused(customer):
    for user in (customer, None):
        socket = await InboxSocket.open(user)
        error = await socket.receive()
        assert (error["type"], error["code"]) == ("error", "not_an_agent")
        assert await socket.receive_close() == 4403
    assert await database_sync_to_async(agents_online_count)() == 0


async def test_a_new_handoff_reaches_every_agent_online(chat_env, agent, other_agent, customer):
    dana, erin = await InboxSocket.open(agent), await InboxSocket.open(other_agent)
    assert (await dana.receive())["type"] == "inbox" and (await erin.receive())["type"] == "inbox"
    assert await database_sync_to_async(agents_online_count)() == 2

    chat = await ChatSocket.open(customer)
    conversation_id = (await chat.receive())["id"]
    await database_sync_to_async(handoffs.conversation_human_request)(
        conversation_id=conversation_id, source="user", reason="Wants a person"
    )
    for socket in (dana, erin):
        frame = await socket.receive_type("queue_changed")
        assert frame["conversation_id"] == conversation_id
    state = await chat.receive()
    assert "will join shortly" in state["notice"]  # agents are online

    await dana.close()
    assert await database_sync_to_async(agents_online_count)() == 1
    await erin.close()
    await chat.close()


async def test_watching_a_conversation(chat_env, agent, other_agent, customer):
    chat = await ChatSocket.open(customer)
    conversation_id = (await chat.receive())["id"]
    dana, erin = await InboxSocket.open(agent), await InboxSocket.open(other_agent)
    await dana.receive()
    await erin.receive()

    await dana.send({"type": "watch", "conversation": str(uuid.uuid4())})
    assert (await dana.receive())["code"] == "conversation_not_found"
    await dana.send({"type": "watch", "conversation": conversation_id})
    assert (await dana.receive()) == {"type": "watching", "conversation": conversation_id}

    # The assistant answers: the agent watching sees the question and the answer as it is written.
    await chat.ask("Where is my invoice?")
    await chat.until_terminal()
    started = await dana.receive_type("answer_started")
    assert started["question"]["text"] == "Where is my invoice?"
    frames = [started]
    while frames[-1]["type"] != "done":
        frames.append(await dana.receive())
    assert any(f["type"] == "delta" for f in frames) and frames[-1]["status"] == "complete"

    # A person takes over: the customer's message and the agent's reply reach the watching agent live;
    # a note reaches every agent and never the customer.
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    assert (await dana.receive_type("conversation_state"))["agent"] == "Dana"
    await chat.receive()  # "Dana from Acme joined."
    await chat.ask("Can I get a refund?")
    await chat.receive()  # ack
    added = await dana.receive_type("message_added")
    assert (added["message"]["role"], added["message"]["text"]) == ("user", "Can I get a refund?")

    await database_sync_to_async(
        lambda: client_for(other_agent).post(
            f"/inbox/c/{conversation_id}/note/", {"text": "Check the refund policy first"}
        )
    )()
    for socket in (dana, erin):
        note = await socket.receive_type("note_added")
        assert (note["conversation_id"], note["note"]["text"]) == (conversation_id, "Check the refund policy first")
    assert await chat.communicator.receive_nothing(timeout=0.3)

    await dana.send({"type": "ping"})
    assert (await dana.receive_type("pong"))["type"] == "pong"
    await dana.send({"type": "claim", "conversation": conversation_id})
    assert (await dana.receive_type("error"))["code"] == "unknown_type"  # actions go through HTTP
    for socket in (dana, erin, chat):
        await socket.close()
