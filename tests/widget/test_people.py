"""A person from the support team in a widget chat, on the widget's socket: chosen up front, asked for
during the chat, the agent's join, messages, hand back and resolve, what a visitor is told while waiting
(also after a reload), and an anonymous visitor's email for the reply."""

import uuid

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.accounts.models import SupportTicket
from apps.chat import handoffs
from apps.chat.models import Conversation, Message
from apps.inbox.services import agent_make
from apps.staffing.models import AgentPresence
from apps.widget.models import Visitor
from tests.chat.factories import UserFactory
from tests.widget.conftest import WidgetSocket
from tests.widget.test_limits import chat_requests

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dana(transactional_db):
    return agent_make(user=UserFactory(username="dana", first_name="Dana", is_staff=True))


async def receive_type(socket: WidgetSocket, kind: str) -> dict:
    frame = await socket.receive()
    assert frame["type"] == kind, frame
    return frame


async def test_a_visitor_chooses_a_person_and_the_agent_answers_in_the_widget(widget_env, site, dana):
    socket = await WidgetSocket.open(site.key)
    conversation, visitor = await socket.hello()
    assert conversation["offer_choice"] is True and visitor["email_left"] is False
    client_id = str(uuid.uuid4())
    await socket.send({"type": "message", "text": "I want a refund", "client_id": client_id, "answerer": "person"})
    ack = await receive_type(socket, "ack")
    assert ack["client_id"] == client_id and ack["reply_id"] is None
    waiting = await receive_type(socket, "conversation_state")
    # Nobody online: the frame is told in words and as values it words in the visitor's language.
    assert (waiting["status"], waiting["humans_answer"], waiting["notice_code"], waiting["reach"]) == (
        "needs_human",
        True,
        "waiting",
        "offline",
    )
    assert "keep your request" in waiting["notice"]
    stored = await database_sync_to_async(Conversation.objects.get)(pk=conversation["id"])
    assert stored.handoff_reason == "Customer chose a person" and chat_requests(widget_env) == 0

    await database_sync_to_async(handoffs.conversation_assign)(conversation_id=stored.pk, agent=dana, assignee=dana)
    joined = await receive_type(socket, "conversation_state")
    assert (joined["notice_code"], joined["agent"], joined["notice"]) == (
        "agent_joined",
        "Dana",
        "Dana from Acme joined.",
    )
    await database_sync_to_async(handoffs.agent_message_send)(conversation_id=stored.pk, agent=dana, text="Done.")
    added = await receive_type(socket, "message_added")
    assert (added["message"]["role"], added["message"]["author"], added["message"]["text"]) == (
        "agent",
        "Dana",
        "Done.",
    )

    await database_sync_to_async(handoffs.conversation_hand_back)(conversation_id=stored.pk, agent=dana)
    back = await receive_type(socket, "conversation_state")
    assert (back["notice_code"], back["humans_answer"], back["status"]) == ("handed_back", False, "open")
    # Shown in the widget (marked before the socket took its next event): never emailed to the visitor.
    shown = await database_sync_to_async(Message.objects.select_related("conversation").get)(role="agent")
    assert shown.conversation.customer_seen_at is not None and shown.conversation.customer_seen_at >= shown.created_at
    frames = await socket.ask("And how do I see my invoices?")
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete" and chat_requests(widget_env) == 1

    await database_sync_to_async(handoffs.conversation_resolve)(conversation_id=stored.pk, agent=dana)
    resolved = await receive_type(socket, "conversation_state")
    assert (resolved["notice_code"], resolved["status"]) == ("resolved", "closed")
    await socket.close()

    # A reload shows the person's message with their name, among the rest.
    again = await WidgetSocket.open(site.key, token=visitor["token"], conversation=conversation["id"])
    resumed, _ = await again.hello()
    await again.close()
    assert [(m["role"], m.get("author")) for m in resumed["messages"]] == [
        ("user", None),
        ("agent", "Dana"),
        ("user", None),
        ("assistant", None),
    ]


async def test_the_choice_follows_the_setting(widget_env, site, settings):
    settings.CHAT_OFFER_HUMAN_CHOICE = False
    socket = await WidgetSocket.open(site.key)
    conversation, _ = await socket.hello()
    assert conversation["offer_choice"] is False
    await socket.send({"type": "message", "text": "A person please", "client_id": None, "answerer": "person"})
    error = await socket.receive()
    await socket.close()
    assert (error["type"], error["code"]) == ("error", "choice_unavailable")
    assert not await database_sync_to_async(Message.objects.filter(conversation_id=conversation["id"]).exists)()


async def test_talk_to_a_human_then_a_reload_and_an_email_for_the_reply(widget_env, site):
    socket = await WidgetSocket.open(site.key)
    conversation, visitor = await socket.hello()
    await socket.ask("My invoice is wrong")
    await socket.send({"type": "human_request"})
    requested = await receive_type(socket, "human_requested")
    waiting = await receive_type(socket, "conversation_state")
    assert (waiting["notice_code"], waiting["reach"], waiting["humans_answer"]) == ("waiting", "offline", True)
    ack = await socket.ask_for_person("It says 40 instead of 20")
    assert ack["reply_id"] is None and chat_requests(widget_env) == 1
    await socket.close()

    # Back later, still waiting: told again how they will be answered, right after the transcript.
    again = await WidgetSocket.open(site.key, token=visitor["token"], conversation=conversation["id"])
    resumed, _ = await again.hello()
    state = await receive_type(again, "conversation_state")
    assert resumed["humans_answer"] is True and (state["notice_code"], state["reach"]) == ("waiting", "offline")
    await again.send({"type": "leave_message", "text": "", "email": "visitor@example.org"})
    left = await receive_type(again, "left")
    await again.close()

    ticket = await database_sync_to_async(SupportTicket.objects.get)()
    assert left["ticket_id"] == requested["ticket_id"] == ticket.pk  # the handoff's ticket gets the address
    assert ticket.body.startswith(f"Site: {site.name}") and "Reply to: visitor@example.org" in ticket.body
    assert "My invoice is wrong" in ticket.body
    assert await database_sync_to_async(lambda: Visitor.objects.get().email)() == "visitor@example.org"
    third = await WidgetSocket.open(site.key, token=visitor["token"], conversation=conversation["id"])
    _, known = await third.hello()
    await third.close()
    assert known["email_left"] is True


async def test_an_email_only_message_needs_an_email(widget_env, site):
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    await socket.send({"type": "leave_message", "text": " ", "email": ""})
    error = await socket.receive()
    await socket.close()
    assert error["code"] == "empty_message"
    assert not await database_sync_to_async(SupportTicket.objects.exists)()


async def test_with_an_agent_online_the_visitor_is_told_a_person_joins_shortly(widget_env, site, dana):
    await database_sync_to_async(AgentPresence.objects.create)(
        channel_name="inbox.test", agent=dana, seen_at=timezone.now()
    )
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    await socket.ask("Hello")
    await socket.send({"type": "human_request"})
    await receive_type(socket, "human_requested")
    waiting = await receive_type(socket, "conversation_state")
    await socket.close()
    assert (waiting["reach"], waiting["back_at"]) == ("now", None)
    assert waiting["notice"].startswith("A person from our team will join shortly")


async def test_past_the_spend_cap_a_visitor_still_reaches_a_person(widget_env, site, settings):
    settings.WIDGET_SITE_DAILY_SPEND_CAP_USD = 0
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    capped = await socket.ask("Hello?")
    assert capped[-1]["code"] == "spend_cap"
    await socket.send({"type": "message", "text": "Hello?", "client_id": None, "answerer": "person"})
    ack = await receive_type(socket, "ack")
    await receive_type(socket, "conversation_state")
    more = await socket.ask_for_person("Anyone?")
    await socket.close()
    assert ack["reply_id"] is None and more["reply_id"] is None and chat_requests(widget_env) == 0


async def test_a_later_answerer_does_not_get_past_the_cap(widget_env, site, settings):
    # Choosing a person on a later question changes nothing (the assistant answers it): still capped.
    settings.WIDGET_SITE_DAILY_SPEND_CAP_USD = 0.000001
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    assert (await socket.ask("Hello?"))[-1]["type"] == "done"
    await socket.send({"type": "message", "text": "Again?", "client_id": None, "answerer": "person"})
    error = await socket.receive()
    await socket.close()
    assert error["code"] == "spend_cap" and chat_requests(widget_env) == 1


@pytest.mark.usefixtures("one_rate_limit_window")
async def test_asking_for_a_person_counts_toward_the_rate_limit(widget_env, site, settings):
    settings.WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE = 1
    socket = await WidgetSocket.open(site.key)
    conversation, _ = await socket.hello()
    assert (await socket.ask("Hello?"))[-1]["type"] == "done"
    await socket.send({"type": "human_request"})
    error = await socket.receive()
    await socket.close()
    assert (error["type"], error.get("code")) == ("error", "rate_limited"), error
    stored = await database_sync_to_async(Conversation.objects.get)(pk=conversation["id"])
    assert stored.status == "open" and not await database_sync_to_async(SupportTicket.objects.exists)()


async def test_outside_business_hours_the_visitor_is_told_when_the_team_is_back(widget_env, site):
    import datetime as dt

    from apps.staffing.models import Holiday, OpeningHours, SupportSchedule

    @database_sync_to_async
    def closed_today():
        schedule = SupportSchedule.objects.create(time_zone="UTC")
        for day in range(7):
            OpeningHours.objects.create(schedule=schedule, weekday=day, opens=dt.time(9), closes=dt.time(17))
        today = timezone.now().date()
        Holiday.objects.create(schedule=schedule, date=today, name="Team day")
        return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)

    back = await closed_today()
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    await socket.ask("Hello")
    await socket.send({"type": "human_request"})
    await receive_type(socket, "human_requested")
    waiting = await receive_type(socket, "conversation_state")
    await socket.close()
    assert (waiting["notice_code"], waiting["reach"]) == ("waiting", "away")
    assert dt.datetime.fromisoformat(waiting["back_at"]) == back
    assert waiting["notice"].startswith("Our team is away; they are back")
