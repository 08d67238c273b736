"""The inbox over HTTP: who may see it, who may act on a conversation, what customers never see."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.chat import handoffs
from apps.chat.models import Conversation, Message
from apps.inbox.models import InternalNote
from tests.chat.factories import ConversationFactory, CustomerAccountFactory, MessageFactory
from tests.inbox.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

CONVERSATION_ACTIONS = ["claim", "assign", "reply", "note", "hand_back", "resolve", "suggest"]


def waiting(user, *, title="Refund please", minutes_ago=5, reason="Customer asked for a human") -> Conversation:
    conversation = ConversationFactory(user=user, title=title)
    MessageFactory(conversation=conversation, text=title)
    handoffs.conversation_human_request(conversation_id=conversation.pk, source="user", reason=reason)
    Conversation.objects.filter(pk=conversation.pk).update(handoff_at=timezone.now() - timedelta(minutes=minutes_ago))
    return Conversation.objects.get(pk=conversation.pk)


def test_a_customer_is_refused_every_inbox_url(customer):
    conversation = waiting(customer)  # even their own conversation
    client = client_for(customer)
    for name in ("inbox:page", "inbox:queue"):
        assert client.get(reverse(name)).status_code == 403
    for name in ("inbox:conversation", "inbox:pane"):
        assert client.get(reverse(name, args=[conversation.pk])).status_code == 404
    for name in CONVERSATION_ACTIONS:
        response = client.post(reverse(f"inbox:{name}", args=[conversation.pk]), {"text": "I am an agent"})
        assert response.status_code == 404, name
    conversation.refresh_from_db()
    assert conversation.assigned_agent is None and conversation.status == "needs_human"
    assert not Message.objects.filter(role="agent").exists() and not InternalNote.objects.exists()


def test_a_visitor_is_sent_to_log_in(transactional_db):
    response = client_for_anonymous().get(reverse("inbox:page"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = client_for_anonymous().post(reverse("inbox:claim", args=[uuid.uuid4()]))
    assert response.status_code == 403


def client_for_anonymous():
    from django.test import Client

    return Client()


@pytest.mark.parametrize("bad_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_unknown_conversations_are_404_for_agents(agent, bad_id):
    client = client_for(agent)
    placeholder = uuid.uuid4()

    def url(name: str) -> str:  # a malformed id cannot be reversed; the path is what a browser would send
        return reverse(name, args=[placeholder]).replace(str(placeholder), bad_id)

    for name in ("inbox:conversation", "inbox:pane"):
        assert client.get(url(name)).status_code == 404
    for name in CONVERSATION_ACTIONS:
        assert client.post(url(f"inbox:{name}"), {"text": "x"}).status_code == 404, name


def test_the_queue_lists_waiting_conversations_oldest_first(agent):
    bob = CustomerAccountFactory(user__username="bob", plan="pro", company="Initech").user
    carol = CustomerAccountFactory(user__username="carol", plan="enterprise", company="Globex").user
    waiting(bob, title="Newer", minutes_ago=2)
    waiting(carol, title="Older", minutes_ago=75, reason="Wants a refund")
    ConversationFactory(user=bob, title="Answered by the assistant")  # open: not in the queue

    page = client_for(agent).get(reverse("inbox:page")).content.decode()
    assert page.index("Older") < page.index("Newer")
    assert "Answered by the assistant" not in page
    assert "Waiting 1 h 15 min" in page and "Waiting 2 min" in page
    assert "Globex · Enterprise plan" in page and "Asked by the customer: Wants a refund" in page


def test_a_degraded_answer_is_in_the_queue_with_its_reason_once(agent, customer):
    conversation = ConversationFactory(user=customer, title="Export my data")
    handoffs.conversation_human_request(
        conversation_id=conversation.pk, source="degraded", reason="Assistant unavailable"
    )
    page = client_for(agent).get(reverse("inbox:queue")).content.decode()
    assert "Export my data" in page and page.count("Assistant unavailable") == 1


def test_claim_reply_hand_back_and_resolve(agent, customer):
    conversation = waiting(customer)
    client = client_for(agent)
    headers = {"HTTP_X_REQUESTED_WITH": "fetch"}
    assert client.post(reverse("inbox:claim", args=[conversation.pk]), **headers).json() == {"ok": True}
    response = client.post(reverse("inbox:reply", args=[conversation.pk]), {"text": "Refunded today."}, **headers)
    assert response.status_code == 200
    reply = Message.objects.get(pk=response.json()["message_id"])
    assert (reply.role, reply.author_id, reply.text) == ("agent", agent.pk, "Refunded today.")

    pane = client.get(reverse("inbox:pane", args=[conversation.pk])).content.decode()
    assert "Refunded today." in pane and "Hand back to the assistant" in pane

    client.post(reverse("inbox:hand_back", args=[conversation.pk]), **headers)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assigned_agent_id) == ("open", None)
    client.post(reverse("inbox:resolve", args=[conversation.pk]), **headers)
    conversation.refresh_from_db()
    assert conversation.status == "closed"


def test_an_agent_cannot_act_on_a_colleagues_conversation_until_it_is_assigned_to_them(agent, other_agent, customer):
    conversation = waiting(customer)
    owner, other = client_for(agent), client_for(other_agent)
    headers = {"HTTP_X_REQUESTED_WITH": "fetch"}
    owner.post(reverse("inbox:claim", args=[conversation.pk]), **headers)

    refused = {
        "claim": {},
        "reply": {"text": "Let me take over"},
        "hand_back": {},
        "resolve": {},
        "assign": {"assignee": other_agent.pk},
    }
    for name, data in refused.items():
        response = other.post(reverse(f"inbox:{name}", args=[conversation.pk]), data, **headers)
        assert response.status_code == 400, name
        assert response.json()["code"] in ("claimed_by_other", "not_claimed"), name
    conversation.refresh_from_db()
    assert conversation.assigned_agent_id == agent.pk and conversation.status == "with_agent"
    assert not Message.objects.filter(role="agent").exists()

    response = owner.post(reverse("inbox:assign", args=[conversation.pk]), {"assignee": other_agent.pk}, **headers)
    assert response.json() == {"ok": True}
    assert (
        other.post(reverse("inbox:reply", args=[conversation.pk]), {"text": "Erin here."}, **headers).status_code == 200
    )
    refused = owner.post(reverse("inbox:reply", args=[conversation.pk]), {"text": "Still me?"}, **headers)
    assert refused.json()["code"] == "not_claimed"


def test_assigning_to_someone_who_is_not_an_agent_is_404(agent, customer, other_customer):
    conversation = waiting(customer)
    response = client_for(agent).post(
        reverse("inbox:assign", args=[conversation.pk]), {"assignee": other_customer.pk}, HTTP_X_REQUESTED_WITH="fetch"
    )
    assert response.status_code == 404 and response.json()["code"] == "agent_not_found"
    conversation.refresh_from_db()
    assert conversation.assigned_agent is None


def test_internal_notes_stay_with_the_agents(agent, other_agent, customer):
    conversation = waiting(customer)
    client_for(agent).post(reverse("inbox:claim", args=[conversation.pk]))
    # Any agent may leave a note, whoever owns the conversation.
    response = client_for(other_agent).post(
        reverse("inbox:note", args=[conversation.pk]), {"text": "VIP: refund approved by finance"}
    )
    assert response.status_code == 302
    note = InternalNote.objects.get()
    assert (note.author_id, note.text) == (other_agent.pk, "VIP: refund approved by finance")
    assert (
        "VIP: refund approved by finance"
        in client_for(agent).get(reverse("inbox:pane", args=[conversation.pk])).content.decode()
    )

    transcript = client_for(customer).get(reverse("conversation-detail", args=[conversation.pk])).json()
    assert "VIP" not in str(transcript)
    assert not Message.objects.filter(text__contains="VIP").exists()


def test_an_empty_reply_or_note_is_refused(agent, customer):
    conversation = waiting(customer)
    client = client_for(agent)
    client.post(reverse("inbox:claim", args=[conversation.pk]))
    for name in ("reply", "note"):
        response = client.post(
            reverse(f"inbox:{name}", args=[conversation.pk]), {"text": "  "}, HTTP_X_REQUESTED_WITH="fetch"
        )
        assert response.status_code == 400 and response.json()["code"] == "empty_message"
