"""Issue 7: walk every URL that takes an object id, as another user, and expect 404 — never data.

The walk enumerates the URL resolver, so an endpoint added later with a `conversation_id` or
`message_id` parameter is covered automatically; an id parameter this test does not know fails it.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from apps.chat.models import Conversation, Feedback, Message
from tests.chat.conftest import ChatSocket
from tests.chat.factories import ConversationFactory, CustomerAccountFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)

ID_PARAMETERS = {"conversation_id", "message_id"}
ADMIN_PREFIX = "admin/"
# Public keys, not anyone's objects: a widget site's key is on its pages for all to see; an unknown or
# disabled one is 404 (tests/widget/test_views.py).
PUBLIC_PARAMETERS = {"key"}
# Staff-only objects (help-centre articles): no customer owns one; every customer is refused them all,
# checked by test_staff_only_objects_are_refused_to_customers below.
STAFF_ONLY_PARAMETERS = {"article_id"}


def walk(patterns, prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += walk(entry.url_patterns, route)
        else:
            found.append((route, entry))
    return found


def object_routes() -> list[str]:
    routes = []
    for route, pattern in walk(get_resolver().url_patterns):
        if route.startswith(ADMIN_PREFIX):
            continue  # staff-only; covered by the admin permission tests
        parameters = set(pattern.pattern.converters) - PUBLIC_PARAMETERS
        if parameters & STAFF_ONLY_PARAMETERS:
            continue
        unknown = parameters - ID_PARAMETERS
        assert not unknown, f"{route}: add {unknown} to this walk so it is checked for object access"
        if parameters:
            routes.append(route)
    return routes


def fill(route: str, conversation: Conversation, message: Message) -> str:
    path = route.replace("<uuid:conversation_id>", str(conversation.pk)).replace("<int:message_id>", str(message.pk))
    return "/" + path


@pytest.fixture
def victims_objects():
    owner = CustomerAccountFactory(user__username="victim").user
    conversation = ConversationFactory(user=owner)
    MessageFactory(conversation=conversation, role="user", text="my secret invoice question")
    answer = MessageFactory(conversation=conversation, role="assistant", text="INV-2026-00777 is paid")
    return owner, conversation, answer


def test_the_walk_finds_the_object_endpoints() -> None:
    routes = object_routes()
    assert "api/conversations/<uuid:conversation_id>/" in routes
    assert "api/messages/<int:message_id>/feedback/" in routes


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_every_object_endpoint_is_404_for_another_user(client, victims_objects, method) -> None:
    _, conversation, answer = victims_objects
    intruder = CustomerAccountFactory(user__username="intruder").user
    client.force_login(intruder)
    for route in object_routes():
        response = getattr(client, method)(
            fill(route, conversation, answer), data={"rating": "up"}, content_type="application/json"
        )
        assert response.status_code in (404, 405), (route, method, response.status_code)
        assert b"INV-2026-00777" not in response.content and b"secret" not in response.content
    conversation.refresh_from_db()
    assert conversation.status == "open"  # the intruder's handoff did nothing
    assert not Feedback.objects.filter(message=answer).exists()  # nor did the feedback


def test_every_object_endpoint_refuses_anonymous_users(client, victims_objects) -> None:
    _, conversation, answer = victims_objects
    for route in object_routes():
        response = client.get(fill(route, conversation, answer))
        assert response.status_code in (302, 401, 403, 405), route
        assert b"INV-2026-00777" not in response.content


def test_listing_shows_only_own_conversations(client, victims_objects) -> None:
    intruder = CustomerAccountFactory(user__username="intruder").user
    client.force_login(intruder)
    body = client.get("/api/conversations/").json()
    assert body["count"] == 0 if isinstance(body, dict) else body == []


async def test_websocket_resume_of_another_users_conversation_is_closed(victims_objects) -> None:
    from channels.db import database_sync_to_async

    _, conversation, _ = victims_objects
    intruder = await database_sync_to_async(lambda: CustomerAccountFactory(user__username="intruder").user)()
    socket = await ChatSocket.open(intruder, conversation=str(conversation.pk))
    frame = await socket.receive()
    assert frame["type"] == "error" and frame["code"] == "conversation_not_found"
    assert "secret" not in str(frame)
    assert await socket.receive_close() == 4404


def staff_only_routes() -> list[str]:
    return [
        route
        for route, pattern in walk(get_resolver().url_patterns)
        if not route.startswith(ADMIN_PREFIX) and set(pattern.pattern.converters) & STAFF_ONLY_PARAMETERS
    ]


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_staff_only_objects_are_refused_to_customers(client, method) -> None:
    from apps.knowledge import services as knowledge_services
    from apps.knowledge.models import Article

    article = knowledge_services.article_create(title="Internal", body="staff secret", status="draft")
    client.force_login(CustomerAccountFactory(user__username="curious").user)
    routes = staff_only_routes()
    assert "api/knowledge/articles/<int:article_id>/" in routes
    for route in routes:
        path = "/" + route.replace("<int:article_id>", str(article.pk))
        response = getattr(client, method)(path, data={"title": "x"}, content_type="application/json")
        assert response.status_code in (403, 405), (route, method, response.status_code)
        assert b"staff secret" not in response.content
    article.refresh_from_db()
    assert (article.title, article.status) == ("Internal", "draft")
    assert Article.objects.count() == 1
