"""Visitors on the widget's websocket, through the real ASGI app, the gateway and the offline emulator:
anonymous chats and their resumption, verified and forged identities, leaving a message."""

import hashlib
import hmac
import logging
import time

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation, Message
from apps.widget.models import SiteConversation, Visitor
from tests.chat.conftest import shown_text
from tests.conftest import received_requests
from tests.widget.conftest import SECRET, WidgetSocket

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Which plan am I on, and what does my last invoice say?"


def sign(user_id: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def upstream_user_text(upstream) -> str:
    """All the text of the last chat request the emulator received (its user turns)."""
    for entry in reversed(received_requests(upstream)):  # newest first
        body = entry.get("body") or {}
        if isinstance(body, dict) and body.get("stream"):
            return json_text(body.get("messages", []))
    raise AssertionError("no chat request reached the emulator")


def json_text(messages) -> str:
    parts = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(block.get("text", "") for block in content if isinstance(block, dict))
    return "\n".join(parts)


async def test_an_anonymous_visitor_chats_without_account_context_and_resumes_with_the_token(widget_env, site):
    socket = await WidgetSocket.open(site.key)
    conversation, visitor = await socket.hello()
    assert visitor["identified"] is False and visitor["token"]
    frames = await socket.ask(QUESTION)
    await socket.close()
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete" and shown_text(frames)
    assert "<account_context>" not in upstream_user_text(widget_env)

    again = await WidgetSocket.open(site.key, token=visitor["token"], conversation=conversation["id"])
    resumed, _ = await again.hello()
    await again.close()
    assert resumed["id"] == conversation["id"]
    assert [m["role"] for m in resumed["messages"]] == ["user", "assistant"]
    assert resumed["messages"][0]["text"] == QUESTION

    @database_sync_to_async
    def stored():
        return Visitor.objects.count(), SiteConversation.objects.get(conversation_id=conversation["id"])

    visitors, held = await stored()
    assert visitors == 1 and held.site_id == site.pk and held.identified is False


async def test_without_its_token_a_visitor_cannot_open_another_visitors_conversation(widget_env, site):
    first = await WidgetSocket.open(site.key)
    conversation, _ = await first.hello()
    await first.ask("Hello")
    await first.close()

    stranger = await WidgetSocket.open(site.key, conversation=conversation["id"])
    visitor, error = await stranger.receive(), await stranger.receive()
    assert visitor["type"] == "visitor" and error["code"] == "conversation_not_found"
    assert await stranger.receive_close() == 4404


async def test_a_token_of_another_site_makes_a_new_visitor(widget_env, site):
    from tests.widget.factories import SiteFactory

    other = await database_sync_to_async(SiteFactory)()
    socket = await WidgetSocket.open(other.key)
    _, visitor = await socket.hello()
    await socket.close()
    again = await WidgetSocket.open(site.key, token=visitor["token"])
    _, visitor_here = await again.hello()
    await again.close()
    assert visitor_here["token"] != visitor["token"]
    assert await database_sync_to_async(Visitor.objects.count)() == 2


async def test_an_unknown_or_disabled_site_is_refused(widget_env, site):
    socket = await WidgetSocket.open("no-such-site")
    assert (await socket.receive())["code"] == "site_not_found"
    assert await socket.receive_close() == 4404


async def test_a_signed_identity_chats_as_that_customer_with_their_account_context(widget_env, site, carol):
    socket = await WidgetSocket.open(site.key, user_id="carol", user_hash=sign("carol"))
    conversation, visitor = await socket.hello()
    frames = await socket.ask(QUESTION)
    await socket.close()
    assert visitor["identified"] is True and frames[-1]["status"] == "complete"
    sent = upstream_user_text(widget_env)
    assert "<account_context>" in sent and "carol" in sent and '"plan": "enterprise"' in sent
    owner = await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation["id"]).user_id)()
    assert owner == carol.pk


async def test_a_forged_identity_stays_anonymous_and_is_logged(widget_env, site, carol, caplog):
    caplog.set_level(logging.WARNING, logger="apps.widget.services")
    socket = await WidgetSocket.open(site.key, user_id="carol", user_hash=sign("carol", secret="guessed"))
    conversation, visitor = await socket.hello()
    await socket.ask(QUESTION)
    await socket.close()
    assert visitor["identified"] is False
    sent = upstream_user_text(widget_env)
    assert "<account_context>" not in sent and "carol" not in sent and "Globex" not in sent
    owner = await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation["id"]).user_id)()
    assert owner != carol.pk
    assert any("forged" in record.getMessage() for record in caplog.records)


async def test_a_signed_identity_of_staff_stays_anonymous(widget_env, site):
    from tests.chat.factories import UserFactory

    await database_sync_to_async(UserFactory)(username="root", is_staff=True)
    socket = await WidgetSocket.open(site.key, user_id="root", user_hash=sign("root"))
    _, visitor = await socket.hello()
    await socket.close()
    assert visitor["identified"] is False and visitor["identity_error"] == "not_a_customer"


def sign_until(user_id: str, expires: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{user_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


async def test_an_identity_signed_with_an_expiry_is_accepted_until_it_and_refused_after(widget_env, site, carol):
    ahead, past = int(time.time()) + 600, int(time.time()) - 1
    valid = await WidgetSocket.open(
        site.key, user_id="carol", user_hash=sign_until("carol", ahead), user_expires=str(ahead)
    )
    _, accepted = await valid.hello()
    await valid.close()
    stale = await WidgetSocket.open(
        site.key, user_id="carol", user_hash=sign_until("carol", past), user_expires=str(past)
    )
    _, expired = await stale.hello()
    await stale.close()
    # A signature for one expiry does not sign a later one the host never signed.
    moved = await WidgetSocket.open(
        site.key, user_id="carol", user_hash=sign_until("carol", past), user_expires=str(ahead)
    )
    _, replayed = await moved.hello()
    await moved.close()
    assert accepted["identified"] is True and "identity_error" not in accepted
    assert (expired["identified"], expired["identity_error"]) == (False, "expired")
    assert (replayed["identified"], replayed["identity_error"]) == (False, "forged")


async def test_a_refused_identity_chats_as_the_guest_and_loses_nothing(widget_env, site, carol):
    """The page's signature stops being valid (secret changed, expired, forged): the frame presents the
    customer's conversation and the guest's; the server resumes the guest's, without refusing the
    connection, and the customer's is there again once the identity is accepted."""
    signed = await WidgetSocket.open(site.key, user_id="carol", user_hash=sign("carol"))
    customer_chat, visitor = await signed.hello()
    await signed.ask(QUESTION)
    await signed.close()

    forged = await WidgetSocket.open(
        site.key,
        token=visitor["token"],
        conversation=customer_chat["id"],
        user_id="carol",
        user_hash=sign("carol", secret="old-secret"),
    )
    guest_chat, refused = await forged.hello()
    await forged.ask("Hello?")
    await forged.close()
    assert (refused["identified"], refused["identity_error"]) == (False, "forged")
    assert guest_chat["id"] != customer_chat["id"]

    again = await WidgetSocket.open(
        site.key,
        token=visitor["token"],
        conversation=customer_chat["id"],
        guest_conversation=guest_chat["id"],
        user_id="carol",
        user_hash=sign("carol", secret="old-secret"),
    )
    guest_resumed, _ = await again.hello()
    await again.close()
    assert guest_resumed["id"] == guest_chat["id"] and guest_resumed["messages"][0]["text"] == "Hello?"

    back = await WidgetSocket.open(
        site.key,
        token=visitor["token"],
        conversation=customer_chat["id"],
        guest_conversation=guest_chat["id"],
        user_id="carol",
        user_hash=sign("carol"),
    )
    resumed, accepted = await back.hello()
    await back.close()
    assert accepted["identified"] is True
    assert resumed["id"] == customer_chat["id"] and resumed["messages"][0]["text"] == QUESTION


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"user_id": "carol"}, "malformed"),  # no hash
        ({"user_id": "carol", "user_hash": "x" * 500}, "malformed"),
        ({"user_id": "carol", "user_hash": sign("carol"), "user_expires": "soon"}, "malformed"),
        ({"user_id": "c" * 151, "user_hash": sign("c" * 151)}, "malformed"),
        ({"user_id": "carol", "user_hash": "0" * 64}, "forged"),
    ],
    ids=["no_hash", "long_hash", "expiry_not_a_number", "long_id", "forged"],
)
async def test_a_malformed_or_forged_identity_is_refused_with_its_reason(widget_env, site, carol, params, error):
    socket = await WidgetSocket.open(site.key, **params)
    _, visitor = await socket.hello()
    frames = await socket.ask("Hello?")
    await socket.close()
    assert (visitor["identified"], visitor["identity_error"]) == (False, error)
    assert frames[-1]["type"] == "done"  # the guest chats on


async def test_a_visitor_leaves_a_message_with_an_email_for_a_reply(widget_env, site):
    socket = await WidgetSocket.open(site.key)
    conversation, _ = await socket.hello()
    await socket.send({"type": "leave_message", "text": "Call me back", "email": "not-an-email"})
    assert (await socket.receive())["code"] == "invalid_email"
    await socket.send({"type": "leave_message", "text": "Call me back", "email": "vis@example.org"})
    left = await socket.receive()
    await socket.send({"type": "leave_message", "text": "Also: the invoice", "email": ""})
    await socket.receive()
    await socket.close()
    assert left["type"] == "left"

    @database_sync_to_async
    def stored():
        return SupportTicket.objects.get(pk=left["ticket_id"]), Visitor.objects.get()

    ticket, visitor = await stored()
    assert "Call me back" in ticket.body and "vis@example.org" in ticket.body and "Also: the invoice" in ticket.body
    assert ticket.conversation_id == conversation["id"] and visitor.email == "vis@example.org"


@pytest.mark.parametrize(
    "text_data",
    ["[" * 100_000 + "]" * 100_000, '{"type": ["leave_message"], "text": "x"}', '{"type": "message", "text": NaN}'],
    ids=["nested_too_deep", "type_not_a_string", "nan"],
)
async def test_a_malformed_frame_gets_the_documented_error_and_the_chat_goes_on(widget_env, site, text_data):
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    await socket.communicator.send_to(text_data=text_data)
    error = await socket.receive()
    frames = await socket.ask(QUESTION)
    await socket.close()
    assert error["type"] == "error" and error["code"] in {"malformed", "unknown_type"}
    assert frames[-1]["type"] == "done"


@pytest.mark.parametrize("kind", ["message", "leave_message"])
@pytest.mark.parametrize("size", ["one_over", "a_mebibyte"])
async def test_an_oversized_frame_is_refused_and_nothing_is_stored_or_sent(widget_env, site, settings, kind, size):
    text = "x" * (settings.CHAT_MAX_MESSAGE_CHARS + 1 if size == "one_over" else 1024 * 1024)
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    await socket.send({"type": kind, "text": text, "client_id": None})
    error = await socket.receive()
    frames = await socket.ask(QUESTION)  # the chat goes on
    await socket.close()
    assert error["type"] == "error" and error["code"] == "message_too_long"
    assert frames[-1]["type"] == "done"

    @database_sync_to_async
    def stored():
        return list(Message.objects.filter(role="user").values_list("text", flat=True)), SupportTicket.objects.count()

    assert await stored() == ([QUESTION], 0)


async def test_a_guest_who_signs_in_goes_on_with_the_same_chat_as_the_customer(widget_env, site, carol):
    guest = await WidgetSocket.open(site.key)
    guest_chat, visitor = await guest.hello()
    await guest.ask("Do you offer a free trial?")
    await guest.close()

    signed = await WidgetSocket.open(
        site.key, token=visitor["token"], guest_conversation=guest_chat["id"], user_id="carol", user_hash=sign("carol")
    )
    resumed, accepted = await signed.hello()
    frames = await signed.ask(QUESTION)
    await signed.close()
    assert accepted["identified"] is True and resumed["id"] == guest_chat["id"]
    assert [m["text"] for m in resumed["messages"] if m["role"] == "user"] == ["Do you offer a free trial?"]
    assert frames[-1]["status"] == "complete" and "<account_context>" in upstream_user_text(widget_env)

    @database_sync_to_async
    def held():
        held = SiteConversation.objects.select_related("conversation").get(conversation_id=guest_chat["id"])
        return held.conversation.user_id, held.identified

    assert await held() == (carol.pk, True)


async def test_only_the_visitors_own_guest_chat_is_claimed_and_only_with_an_accepted_identity(widget_env, site, carol):
    other = await WidgetSocket.open(site.key)
    others_chat, _ = await other.hello()
    await other.ask("Someone else's question")
    await other.close()
    mine = await WidgetSocket.open(site.key)
    my_chat, visitor = await mine.hello()
    await mine.ask("My question as a guest")
    await mine.close()

    async def connect(**params) -> tuple[dict, dict]:
        socket = await WidgetSocket.open(site.key, token=visitor["token"], user_id="carol", **params)
        opened = await socket.hello()
        await socket.close()
        return opened

    stolen, _ = await connect(guest_conversation=others_chat["id"], user_hash=sign("carol"))
    forged, refused = await connect(guest_conversation=my_chat["id"], user_hash=sign("carol", secret="guess"))
    assert stolen["id"] not in (others_chat["id"], my_chat["id"]) and "messages" not in stolen
    assert refused["identified"] is False and forged["id"] == my_chat["id"]  # still the guest's, as a guest

    @database_sync_to_async
    def owners():
        return {str(c.pk): c.user_id for c in Conversation.objects.filter(pk__in=[others_chat["id"], my_chat["id"]])}

    assert carol.pk not in (await owners()).values()
