"""Inbox fixtures: agents in the "Support agents" group, a logged-in HTTP client, an inbox socket."""

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.inbox.services import agent_make
from tests.chat.conftest import chat_env, customer, other_customer, session_cookie  # noqa: F401
from tests.chat.factories import UserFactory


def make_agent(username: str, first_name: str):
    return agent_make(user=UserFactory(username=username, first_name=first_name, is_staff=True))


@pytest.fixture
def agent(transactional_db):
    return make_agent("dana", "Dana")


@pytest.fixture
def other_agent(transactional_db):
    return make_agent("erin", "Erin")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class InboxSocket:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    @classmethod
    async def open(cls, user=None) -> "InboxSocket":
        from supportbot.asgi import application

        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if user is not None:
            headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
        communicator = WebsocketCommunicator(application, "/ws/inbox/", headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        return cls(communicator)

    async def receive(self, timeout: float = 15) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def receive_type(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        """The next frame of type `kind`, skipping others (e.g. queue_changed between them)."""
        while True:
            frame = await self.receive(timeout=timeout)
            if frame["type"] == kind:
                return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def receive_close(self, timeout: float = 5) -> int:
        output = await self.communicator.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code", 1000)

    async def close(self) -> None:
        await self.communicator.disconnect()
