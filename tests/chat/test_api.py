"""REST API: history, transcript, feedback and handoff; other users' objects are 404."""

import uuid

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation, Feedback, Message
from tests.chat.factories import ConversationFactory, CustomerAccountFactory, MessageFactory, exchange

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return CustomerAccountFactory(user__username="alice").user


@pytest.fixture
def mallory():
    return CustomerAccountFactory(user__username="mallory").user


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        client.get("/")  # the chat page sets the CSRF cookie the page's fetch() calls send back
        return client

    return make


def _csrf(client: Client) -> dict[str, str]:
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}


def test_list_shows_only_my_conversations_with_messages(alice, mallory, client_for):
    mine = ConversationFactory(user=alice, title="Refund for order 12")
    exchange(mine, "Refund?", "Sure.")
    ConversationFactory(user=alice, title="")  # opened, never used
    exchange(ConversationFactory(user=mallory, title="Mallory's secret"), "x", "y")

    body = client_for(alice).get("/api/conversations/").json()

    assert [(c["id"], c["title"], c["message_count"]) for c in body["results"]] == [
        (str(mine.id), "Refund for order 12", 2)
    ]


def test_detail_has_the_transcript_and_my_rating(alice, client_for):
    conversation = ConversationFactory(user=alice)
    _, answer = exchange(conversation, "Where is my invoice?", "Under Billing → Invoices.")
    Feedback.objects.create(message=answer, user=alice, rating="up")

    body = client_for(alice).get(f"/api/conversations/{conversation.id}/").json()

    assert [(m["role"], m["text"], m["feedback"]) for m in body["messages"]] == [
        ("user", "Where is my invoice?", None),
        ("assistant", "Under Billing → Invoices.", "up"),
    ]


def test_feedback_is_one_per_answer_and_can_be_changed(alice, client_for):
    _, answer = exchange(ConversationFactory(user=alice), "Q", "A")
    client = client_for(alice)
    url = f"/api/messages/{answer.pk}/feedback/"

    first = client.put(url, {"rating": "down"}, content_type="application/json", **_csrf(client))
    second = client.put(
        url, {"rating": "up", "comment": "Actually helpful"}, content_type="application/json", **_csrf(client)
    )

    assert first.status_code == 200 and second.status_code == 200
    feedback = Feedback.objects.get(message=answer)
    assert (feedback.rating, feedback.comment, feedback.user_id) == ("up", "Actually helpful", alice.pk)
    assert Feedback.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "target"),
    [({"rating": "meh"}, "answer"), ({"rating": "up"}, "question"), ({"rating": "up"}, "streaming")],
)
def test_feedback_rejects_bad_ratings_and_non_answers(alice, client_for, payload, target):
    conversation = ConversationFactory(user=alice)
    question, answer = exchange(conversation, "Q", "A")
    streaming = MessageFactory(conversation=conversation, role="assistant", status="streaming", reply_to=question)
    message = {"answer": answer, "question": question, "streaming": streaming}[target]
    client = client_for(alice)

    response = client.put(
        f"/api/messages/{message.pk}/feedback/", payload, content_type="application/json", **_csrf(client)
    )

    assert response.status_code == 400
    assert not Feedback.objects.exists()


def test_handoff_opens_a_ticket_with_the_transcript_and_flags_the_conversation(alice, client_for):
    conversation = ConversationFactory(user=alice, title="Cancel my plan")
    exchange(conversation, "Cancel my plan please", "I can help with that.")
    client = client_for(alice)
    url = f"/api/conversations/{conversation.id}/handoff/"

    response = client.post(url, **_csrf(client))
    again = client.post(url, **_csrf(client))

    assert response.status_code == 201 and response.json()["conversation_status"] == "needs_human"
    ticket = SupportTicket.objects.get(pk=response.json()["ticket_id"])
    assert again.json()["ticket_id"] == ticket.pk  # asking twice does not open a second ticket
    assert (ticket.source, ticket.conversation_id, ticket.user_id) == ("handoff", str(conversation.id), alice.pk)
    assert "Cancel my plan please" in ticket.body and "I can help with that." in ticket.body
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.NEEDS_HUMAN
    assert client.get(f"/api/conversations/{conversation.id}/").json()["ticket_id"] == ticket.pk


def test_other_users_objects_are_404(alice, mallory, client_for):
    theirs = ConversationFactory(user=mallory)
    _, answer = exchange(theirs, "secret", "secret answer")
    client = client_for(alice)

    responses = [
        client.get(f"/api/conversations/{theirs.id}/"),
        client.get(f"/api/conversations/{uuid.uuid4()}/"),
        client.put(
            f"/api/messages/{answer.pk}/feedback/", {"rating": "up"}, content_type="application/json", **_csrf(client)
        ),
        client.post(f"/api/conversations/{theirs.id}/handoff/", **_csrf(client)),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert "secret" not in "".join(r.content.decode() for r in responses)
    assert not Feedback.objects.exists() and not SupportTicket.objects.exists()
    assert Conversation.objects.get(pk=theirs.pk).status == "open"


def test_anonymous_requests_are_403(alice):
    conversation = ConversationFactory(user=alice)
    _, answer = exchange(conversation, "Q", "A")
    client = Client()

    responses = [
        client.get("/api/conversations/"),
        client.get(f"/api/conversations/{conversation.id}/"),
        client.put(f"/api/messages/{answer.pk}/feedback/", {"rating": "up"}, content_type="application/json"),
        client.post(f"/api/conversations/{conversation.id}/handoff/"),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403, 403]


def test_post_without_csrf_token_is_refused(alice):
    _, answer = exchange(ConversationFactory(user=alice), "Q", "A")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.put(f"/api/messages/{answer.pk}/feedback/", {"rating": "up"}, content_type="application/json")

    assert response.status_code == 403 and not Feedback.objects.exists()


def test_schema_documents_the_chat_api_without_warnings(capsys):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    captured = capsys.readouterr()

    chat_paths = [p for p in schema["paths"] if p.startswith(("/api/conversations", "/api/messages"))]
    assert sorted(chat_paths) == [
        "/api/conversations/",
        "/api/conversations/{conversation_id}/",
        "/api/conversations/{conversation_id}/handoff/",
        "/api/messages/{message_id}/feedback/",
    ]
    chat_views = ("apis.Conversation", "apis.MessageFeedback", "chat/apis.py")
    problems = [
        line
        for line in (captured.err + captured.out).splitlines()
        if any(v in line for v in chat_views) or 'fields named "status"' in line
    ]
    assert problems == []


def test_chat_page_requires_login_and_renders_for_a_customer(alice, client_for):
    assert Client().get("/").status_code == 302
    page = client_for(alice).get("/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'aria-live="polite"' in html and 'for="message-input"' in html and "chat/chat.js" in html
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_login_page_logs_in_and_redirects_to_chat(alice):
    client = Client()
    assert "Log in" in client.get("/accounts/login/").content.decode()
    response = client.post("/accounts/login/", {"username": "alice", "password": "demo-password"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert Message.objects.count() == 0
