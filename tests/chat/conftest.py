"""Chat fixtures: seeded prompts, customers, and a websocket client speaking docs/protocol.md."""

import json
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache

from apps.prompts.services import prompt_seed_defaults
from tests.chat.factories import CustomerAccountFactory

TERMINAL = ("done", "error")


@pytest.fixture
def chat_env(llm_upstream, transactional_db):
    """The emulator, the demo prompts, and empty rate-limit / circuit-breaker counters."""
    cache.clear()
    prompt_seed_defaults()
    yield llm_upstream
    cache.clear()


@pytest.fixture
def customer(transactional_db):
    return CustomerAccountFactory(user__username="alice").user


@pytest.fixture
def other_customer(transactional_db):
    return CustomerAccountFactory(user__username="mallory").user


def session_cookie(user) -> bytes:
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return f"{django_settings.SESSION_COOKIE_NAME}={session.session_key}".encode()


class ChatSocket:
    """A websocket client of the real ASGI application (origin check and session auth included)."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    @classmethod
    async def open(cls, user=None, *, conversation: str | None = None) -> "ChatSocket":
        from supportbot.asgi import application

        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if user is not None:
            headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
        path = "/ws/chat/" + (f"?conversation={conversation}" if conversation is not None else "")
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        return cls(communicator)

    async def receive(self, timeout: float = 15) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def receive_close(self, timeout: float = 5) -> int:
        output = await self.communicator.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code", 1000)

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def ask(self, text: str, client_id: str | None = None) -> str:
        client_id = client_id or str(uuid.uuid4())
        await self.send({"type": "message", "text": text, "client_id": client_id})
        return client_id

    async def until_terminal(self, timeout: float = 20) -> list[dict[str, Any]]:
        """Frames up to and including the next done/error frame."""
        frames = []
        while True:
            frame = await self.receive(timeout=timeout)
            frames.append(frame)
            if frame["type"] in TERMINAL:
                return frames

    async def close(self) -> None:
        await self.communicator.disconnect()


def shown_text(frames: list[dict[str, Any]]) -> str:
    """What a client following the protocol displays: deltas since the last reset."""
    text = ""
    for frame in frames:
        if frame["type"] == "reset":
            text = ""
        elif frame["type"] == "delta":
            text += frame["text"]
    return text
