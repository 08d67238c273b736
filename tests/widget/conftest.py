"""Widget fixtures: a site, a websocket client of /ws/widget/<key>/ with a visitor token and identity."""

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from channels.testing import WebsocketCommunicator
from django.core.cache import cache

from apps.prompts.services import prompt_seed_defaults
from tests.chat.conftest import TERMINAL
from tests.chat.factories import CustomerAccountFactory
from tests.widget.factories import SiteFactory

SECRET = "host-site-secret-for-tests"


@pytest.fixture
def widget_env(llm_upstream, transactional_db):
    """The emulator, the demo prompts, empty rate-limit counters."""
    cache.clear()
    prompt_seed_defaults()
    yield llm_upstream
    cache.clear()


@pytest.fixture
def carol(transactional_db):
    """A customer of the host site, with an account (language "en")."""
    return CustomerAccountFactory(user__username="carol", plan="enterprise", company="Globex").user


@pytest.fixture
def site(transactional_db):
    return SiteFactory(origin="https://help.example.com", name="Acme Help", secret=SECRET)


class WidgetSocket:
    """A websocket client of the real ASGI application, as the chat frame opens it."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    @classmethod
    async def open(
        cls, key: str, *, client: str = "203.0.113.9", headers: tuple[tuple[bytes, bytes], ...] = (), **params: str
    ) -> "WidgetSocket":
        from supportbot.asgi import application

        query = urlencode({name: value for name, value in params.items() if value is not None})
        communicator = WebsocketCommunicator(
            application,
            f"/ws/widget/{key}/" + (f"?{query}" if query else ""),
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), *headers],
        )
        communicator.scope["client"] = (client, 50000)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        return cls(communicator)

    async def receive(self, timeout: float = 15) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def hello(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The conversation frame and the visitor frame of a successful connect (the visitor frame comes first)."""
        visitor, conversation = await self.receive(), await self.receive()
        assert (visitor["type"], conversation["type"]) == ("visitor", "conversation"), (visitor, conversation)
        return conversation, visitor

    async def receive_close(self, timeout: float = 5) -> int:
        output = await self.communicator.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code", 1000)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def ask(self, text: str) -> list[dict[str, Any]]:
        await self.send({"type": "message", "text": text, "client_id": None})
        frames = []
        while True:
            frame = await self.receive(timeout=20)
            frames.append(frame)
            if frame["type"] in TERMINAL:
                return frames

    async def ask_for_person(self, text: str) -> dict[str, Any]:
        """A question while a person answers the chat: its ack (no answer from the assistant follows)."""
        await self.send({"type": "message", "text": text, "client_id": str(uuid.uuid4())})
        frame = await self.receive()
        assert frame["type"] == "ack", frame
        return frame

    async def close(self) -> None:
        await self.communicator.disconnect()
