"""An open chat socket follows its login session: logout, expiry and a password change end it (4401)."""

import datetime

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import AsyncClient
from django.utils import timezone

from apps.chat import consumers
from apps.chat.models import Message
from tests.chat.conftest import ChatSocket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(user) -> tuple[ChatSocket, str]:
    """A chat socket and the key of the login session it was opened with."""
    from supportbot.asgi import application

    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    socket = ChatSocket(communicator)
    assert (await socket.receive())["type"] == "conversation"
    return socket, cookie.decode().split("=", 1)[1]


async def stored_messages() -> int:
    return await database_sync_to_async(Message.objects.count)()


async def test_logging_out_in_another_tab_ends_the_open_socket(chat_env, customer):
    socket, session_key = await open_socket(customer)
    other_browser_socket, _ = await open_socket(customer)  # another login session of the same user

    client = AsyncClient()
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    response = await client.post("/accounts/logout/")
    assert response.status_code == 302

    error = await socket.receive()
    assert (error["type"], error["code"]) == ("error", "unauthenticated") and "logged out" in error["message"]
    assert await socket.receive_close() == 4401
    # The other login session (another browser) is not logged out.
    await other_browser_socket.ask("Still here?")
    assert (await other_browser_socket.until_terminal())[-1]["status"] == "complete"
    await other_browser_socket.close()


async def test_an_expired_session_gets_unauthenticated_and_the_question_is_not_stored(chat_env, customer, monkeypatch):
    monkeypatch.setattr(consumers, "SESSION_CHECK_SECONDS", 0)
    socket, session_key = await open_socket(customer)
    await database_sync_to_async(
        lambda: Session.objects.filter(session_key=session_key).update(
            expire_date=timezone.now() - datetime.timedelta(seconds=1)
        )
    )()

    await socket.ask("Are you there?")
    error = await socket.receive()
    assert (error["type"], error["code"]) == ("error", "unauthenticated") and "expired" in error["message"]
    assert await socket.receive_close() == 4401
    assert await stored_messages() == 0


@pytest.mark.parametrize("change", ["password", "deactivated"])
async def test_a_password_change_or_deactivation_ends_the_session_like_django_does(
    chat_env, customer, monkeypatch, change
):
    monkeypatch.setattr(consumers, "SESSION_CHECK_SECONDS", 0)
    socket, _ = await open_socket(customer)

    def change_account():
        if change == "password":
            customer.set_password("a-new-password-1234")
        else:
            customer.is_active = False
        customer.save()

    await database_sync_to_async(change_account)()
    await socket.ask("Are you there?")
    assert (await socket.receive())["code"] == "unauthenticated"
    assert await socket.receive_close() == 4401
    assert await stored_messages() == 0


async def test_a_valid_session_checked_on_every_frame_chats_as_usual(chat_env, customer, monkeypatch):
    monkeypatch.setattr(consumers, "SESSION_CHECK_SECONDS", 0)
    socket, _ = await open_socket(customer)
    for question in ("First question", "Second question"):
        await socket.ask(question)
        assert (await socket.until_terminal())[-1]["status"] == "complete"
    await socket.close()
