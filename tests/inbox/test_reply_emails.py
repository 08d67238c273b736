"""An agent's answer reaches a customer who left the chat: by email, once, only if they did not see it."""

import datetime as dt
import time

import pytest
from channels.db import database_sync_to_async
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.chat import handoffs
from apps.chat.models import Conversation, Message
from apps.core.periodic import EmbeddedScheduler, embedded_intervals
from apps.inbox import notifications
from apps.widget.models import SiteConversation
from apps.widget.services import visitor_authenticate
from tests.chat.conftest import ChatSocket
from tests.inbox.conftest import InboxSocket, client_for
from tests.inbox.test_views import waiting
from tests.widget.factories import SiteFactory

pytestmark = pytest.mark.django_db(transaction=True)

DELAY = 120


@pytest.fixture(autouse=True)
def _reply_email_settings(settings):
    settings.SUPPORT_REPLY_EMAIL_AFTER_SECONDS = DELAY
    settings.SUPPORT_EMAIL_ADDRESS = "help@acme.test"
    settings.SUPPORT_SITE_URL = "https://support.acme.test"


def later(seconds: int = DELAY + 1) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=seconds)


def claimed(user, agent, **kwargs) -> Conversation:
    conversation = waiting(user, **kwargs)
    handoffs.conversation_assign(conversation_id=conversation.pk, agent=agent, assignee=agent)
    mail.outbox.clear()  # the handoff's email to the support address
    return conversation


def reply(conversation: Conversation, agent, text: str) -> Message:
    return handoffs.agent_message_send(conversation_id=conversation.pk, agent=agent, text=text)


def agent_sees(agent, conversation: Conversation) -> str:
    """The conversation's page in the inbox, as `agent` gets it."""
    return client_for(agent).get(reverse("inbox:conversation", args=[conversation.pk])).content.decode()


def test_a_customer_who_left_gets_the_agents_answers_in_one_email_once(customer, agent):
    conversation = claimed(customer, agent, title="Refund please")
    reply(conversation, agent, "I have refunded the last invoice.")
    reply(conversation, agent, "It shows on your card in 3 days.")

    assert notifications.unseen_replies_email(now=timezone.now()) == 0  # not yet: they may come back
    assert "Not seen by the customer yet" in agent_sees(agent, conversation)
    assert notifications.unseen_replies_email(now=later()) == 1
    assert agent_sees(agent, conversation).count("Emailed to the customer") == 2

    [email] = mail.outbox
    assert email.to == [customer.email] and email.reply_to == ["help@acme.test"]
    assert email.from_email == "help@acme.test"
    assert email.subject == "Dana from Acme answered you"
    assert 'Dana from Acme answered you about "Refund please"' in email.body
    assert "Dana:\nI have refunded the last invoice.\n\nDana:\nIt shows on your card in 3 days." in email.body
    assert f"https://support.acme.test/?c={conversation.pk}" in email.body

    assert notifications.unseen_replies_email(now=later()) == 0  # never twice
    reply(conversation, agent, "Anything else?")
    assert notifications.unseen_replies_email(now=later()) == 1
    assert "Anything else?" in mail.outbox[1].body and "refunded" not in mail.outbox[1].body


async def test_an_answer_shown_live_is_not_emailed_and_the_agent_sees_it_was_seen(chat_env, customer, agent):
    socket = await ChatSocket.open(customer)
    conversation_id = (await socket.receive())["id"]
    inbox = await InboxSocket.open(agent)
    await inbox.receive_type("inbox")
    await inbox.send({"type": "watch", "conversation": conversation_id})
    await inbox.receive_type("watching")
    await database_sync_to_async(handoffs.conversation_assign)(
        conversation_id=conversation_id, agent=agent, assignee=agent
    )
    await socket.receive()  # "Dana from Acme joined."
    await database_sync_to_async(handoffs.agent_message_send)(
        conversation_id=conversation_id, agent=agent, text="Here is your answer."
    )
    assert (await socket.receive())["type"] == "message_added"
    assert await inbox.receive_type("customer_seen") == {"type": "customer_seen", "conversation_id": conversation_id}
    assert await socket.communicator.receive_nothing(timeout=0.2)  # the customer's socket is told nothing more
    await socket.close()
    await inbox.close()

    mail.outbox.clear()
    assert await database_sync_to_async(notifications.unseen_replies_email)(now=later()) == 0
    assert mail.outbox == []
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert "Seen by the customer" in await database_sync_to_async(agent_sees)(agent, conversation)


async def test_a_customer_who_comes_back_and_opens_the_conversation_is_not_emailed(chat_env, customer, agent):
    conversation = await database_sync_to_async(claimed)(customer, agent)
    await database_sync_to_async(reply)(conversation, agent, "Answered while you were away.")
    socket = await ChatSocket.open(customer, conversation=str(conversation.pk))
    opened = await socket.receive()
    assert opened["messages"][-1]["text"] == "Answered while you were away."
    await socket.close()

    assert await database_sync_to_async(notifications.unseen_replies_email)(now=later()) == 0
    assert mail.outbox == []

    # Opening it again shows nothing new: nothing is written.
    seen_at = (await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)).customer_seen_at
    again = await ChatSocket.open(customer, conversation=str(conversation.pk))
    await again.receive()
    await again.close()
    assert (await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)).customer_seen_at == seen_at


def test_a_widget_visitor_is_emailed_at_the_address_they_left_with_their_site(agent):
    site = SiteFactory(origin="https://help.example.com", name="Acme Help")
    visitor = visitor_authenticate(site=site, token=None, user_id=None, signature=None).visitor
    conversation = claimed(visitor.user, agent)
    reply(conversation, agent, "Yes, 14 days free.")
    assert notifications.unseen_replies_email(now=later()) == 0  # no address left: the inbox only

    visitor.email = "visitor@example.org"
    visitor.save()
    assert notifications.unseen_replies_email(now=later()) == 1
    [email] = mail.outbox
    assert email.to == ["visitor@example.org"] and "Yes, 14 days free." in email.body
    assert "https://help.example.com" in email.body and "?c=" not in email.body


def test_a_customer_signed_in_in_a_widget_is_emailed_at_their_account_with_the_sites_link(customer, agent):
    site = SiteFactory(origin="https://shop.example.com", name="Acme Shop")
    visitor = visitor_authenticate(site=site, token=None, user_id=None, signature=None).visitor
    conversation = claimed(customer, agent)
    SiteConversation.objects.create(
        conversation=conversation, conversation_key=str(conversation.pk), site=site, visitor=visitor, identified=True
    )
    reply(conversation, agent, "Your order ships today.")
    assert notifications.unseen_replies_email(now=later()) == 1
    [email] = mail.outbox
    assert email.to == [customer.email]
    assert "Continue the conversation in the chat: https://shop.example.com" in email.body


def test_a_failing_mail_server_loses_nothing(customer, agent, settings):
    conversation = claimed(customer, agent)
    reply(conversation, agent, "Your answer.")
    settings.SUPPORT_EMAIL_URL = "smtp://127.0.0.1:9?tls=false"  # nothing listens: connection refused
    assert notifications.unseen_replies_email(now=later()) == 0
    assert Conversation.objects.get(pk=conversation.pk).replies_emailed_through is None

    settings.SUPPORT_EMAIL_URL = "locmem://"
    assert notifications.unseen_replies_email(now=later()) == 1
    assert "Your answer." in mail.outbox[0].body


def test_old_answers_and_the_setting_off_are_never_emailed(customer, agent, settings):
    conversation = claimed(customer, agent)
    old = reply(conversation, agent, "Long ago.")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - notifications.EMAIL_WINDOW)
    assert notifications.unseen_replies_email(now=later()) == 0

    reply(conversation, agent, "Today.")
    settings.SUPPORT_REPLY_EMAIL_AFTER_SECONDS = 0
    assert notifications.unseen_replies_email(now=later()) == 0
    settings.SUPPORT_REPLY_EMAIL_AFTER_SECONDS = DELAY
    assert notifications.unseen_replies_email(now=later()) == 1
    assert "Today." in mail.outbox[0].body and "Long ago." not in mail.outbox[0].body


def test_without_a_broker_the_server_runs_the_sweep_itself(customer, agent, settings):
    assert embedded_intervals() == {"apps.inbox.tasks.unseen_replies_email": 60.0}

    settings.SUPPORT_REPLY_EMAIL_AFTER_SECONDS = 1
    conversation = claimed(customer, agent)
    reply(conversation, agent, "Sent by the server's own scheduler.")
    scheduler = EmbeddedScheduler({"apps.inbox.tasks.unseen_replies_email": 0.2})
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not mail.outbox and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert [e.to for e in mail.outbox] == [[customer.email]]
    assert "Sent by the server's own scheduler." in mail.outbox[0].body
