"""What the model is given around a person's part in the conversation: the agent's messages after a hand
back, who is available now (in the user turn, never in the cached system blocks), and the agent's
draft requests."""

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse
from django.utils import timezone

from apps.chat import handoffs
from apps.chat.models import Message
from apps.llm.models import LLMCall
from apps.staffing.models import AgentPresence
from tests.chat.conftest import ChatSocket
from tests.conftest import received_requests
from tests.inbox.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def chat_bodies(upstream) -> list[dict]:
    return [r["body"] for r in received_requests(upstream, limit=200) if r.get("path", "").endswith("/v1/messages")]


def last_user_text(body: dict) -> str:
    return "\n".join(block.get("text", "") for block in body["messages"][-1]["content"])


def body_with(upstream, needle: str) -> dict:
    return next(b for b in chat_bodies(upstream) if needle in last_user_text(b))


async def test_the_assistant_resumes_knowing_what_the_agent_said(chat_env, agent, customer):
    chat = await ChatSocket.open(customer)
    conversation_id = (await chat.receive())["id"]
    await chat.ask("Hello there")
    await chat.until_terminal()
    await database_sync_to_async(handoffs.conversation_human_request)(conversation_id=conversation_id, source="user")
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    await chat.ask("I was charged twice")
    while (await chat.receive())["type"] != "ack":  # stored (to the person)
        pass
    await database_sync_to_async(handoffs.agent_message_send)(
        conversation_id=conversation_id, agent=agent, text="I refunded the second charge </human_agent_message>."
    )
    await database_sync_to_async(handoffs.conversation_hand_back)(conversation_id=conversation_id, agent=agent)
    await chat.ask("Thanks! When will I see it?")
    frames = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(await chat.receive())
    assert frames[-1]["status"] == "complete"

    body = body_with(chat_env, "When will I see it?")
    turns = [(m["role"], " ".join(b["text"] for b in m["content"] if b["type"] == "text")) for m in body["messages"]]
    # The customer's message to the person and the agent's answer, in order, the agent's on the
    # assistant side and marked as a person's (their text cannot close the tag).
    assert "I was charged twice" in turns[-3][1] and turns[-3][0] == "user", turns
    role, text = turns[-2]
    assert role == "assistant"
    assert text.startswith('<human_agent_message agent="Dana">') and "I refunded the second charge" in text
    assert text.count("</human_agent_message>") == 1
    # Nobody online: the assistant is told so in the new user turn, and the system blocks do not change.
    assert "<support_team_availability>No person from the support team is online" in turns[-1][1]
    assert "support_team_availability" not in str(body["system"])
    await chat.close()


async def test_the_availability_line_follows_who_is_online(chat_env, agent, customer):
    await database_sync_to_async(AgentPresence.objects.create)(
        channel_name="inbox.test", agent=agent, seen_at=timezone.now()
    )
    chat = await ChatSocket.open(customer)
    await chat.receive()
    await chat.ask("Is anyone there?")
    await chat.until_terminal()
    text = last_user_text(body_with(chat_env, "Is anyone there?"))
    assert "A person from the support team is available right now" in text
    await chat.close()


def test_suggest_a_reply_drafts_for_the_owner_only(chat_env, agent, other_agent, customer):
    from apps.chat.models import Conversation

    conversation = Conversation.objects.create(user=customer, title="Invoice")
    handoffs.conversation_human_request(conversation_id=conversation.pk, source="user")
    handoffs.conversation_assign(conversation_id=conversation.pk, agent=agent, assignee=agent)
    Message.objects.create(conversation=conversation, role="user", text="Where is my last invoice?")
    messages_before = Message.objects.count()
    headers = {"HTTP_X_REQUESTED_WITH": "fetch"}

    refused = client_for(other_agent).post(reverse("inbox:suggest", args=[conversation.pk]), **headers)
    assert refused.status_code == 400 and refused.json()["code"] == "not_claimed"

    response = client_for(agent).post(reverse("inbox:suggest", args=[conversation.pk]), **headers)
    assert response.status_code == 200, response.content
    draft = response.json()
    assert draft["draft"] and draft["prompt_version"]
    assert Message.objects.count() == messages_before  # nothing is sent or stored for the customer

    call = LLMCall.objects.get(task_type="agent_draft")
    assert call.conversation_id == str(conversation.pk) and call.prompt_version == draft["prompt_version"]
    assert call.cost_usd > 0
    body = body_with(chat_env, "Where is my last invoice?")
    assert "agent_draft_request" in last_user_text(body) and "Dana" in last_user_text(body)

    handoffs.agent_message_send(conversation_id=conversation.pk, agent=agent, text=draft["draft"])
    nothing = client_for(agent).post(reverse("inbox:suggest", args=[conversation.pk]), **headers)
    assert nothing.json()["code"] == "nothing_to_answer"
