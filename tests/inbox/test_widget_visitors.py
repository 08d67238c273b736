"""An anonymous widget visitor's conversation in the inbox: shown as a visitor of its site (no customer
account, plan or billing facts), with the email they left for the reply; agents claim and answer it."""

import pytest
from django.urls import reverse

from apps.chat.models import Message
from apps.widget.services import visitor_authenticate
from tests.inbox.conftest import client_for
from tests.inbox.test_views import waiting
from tests.widget.factories import SiteFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def visitor(transactional_db):
    site = SiteFactory(origin="https://help.example.com", name="Acme Help")
    return visitor_authenticate(site=site, token=None, user_id=None, signature=None).visitor


def test_a_visitors_conversation_shows_the_site_and_no_plan(agent, visitor):
    conversation = waiting(visitor.user, title="Is there a free trial?")
    queue = client_for(agent).get(reverse("inbox:queue")).content.decode()
    assert "Visitor on Acme Help · no customer account · no email left" in queue
    assert "Free plan" not in queue and visitor.user.username not in queue

    visitor.email = "visitor@example.org"
    visitor.save()
    page = client_for(agent).get(reverse("inbox:conversation", args=[conversation.pk])).content.decode()
    assert "no customer account · reply to visitor@example.org" in page
    assert 'href="mailto:visitor@example.org"' in page
    assert '<p class="msg-author">Visitor</p>' in page and visitor.user.username not in page


def test_an_agent_claims_and_answers_a_visitor(agent, visitor):
    conversation = waiting(visitor.user)
    client = client_for(agent)
    fetch = {"HTTP_X_REQUESTED_WITH": "fetch"}
    assert client.post(reverse("inbox:claim", args=[conversation.pk]), **fetch).status_code == 200
    response = client.post(reverse("inbox:reply", args=[conversation.pk]), {"text": "Yes, 14 days."}, **fetch)
    assert response.status_code == 200
    reply = Message.objects.get(role="agent")
    assert (reply.conversation_id, reply.author_id, reply.text) == (conversation.pk, agent.pk, "Yes, 14 days.")


def test_a_suggested_reply_for_a_visitor_carries_no_account_facts(chat_env, agent, visitor):
    from tests.inbox.test_resume_and_copilot import body_with, last_user_text

    conversation = waiting(visitor.user, title="Do you ship to Canada?")
    fetch = {"HTTP_X_REQUESTED_WITH": "fetch"}
    client = client_for(agent)
    client.post(reverse("inbox:claim", args=[conversation.pk]), **fetch)
    response = client.post(reverse("inbox:suggest", args=[conversation.pk]), **fetch)
    assert response.status_code == 200, response.content
    assert response.json()["draft"]
    sent = last_user_text(body_with(chat_env, "Do you ship to Canada?"))
    assert "<account_context>" not in sent and visitor.user.username not in sent
