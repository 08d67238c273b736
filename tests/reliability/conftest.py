"""Drive the real websocket path (ASGI app → consumer → gateway → SDK → emulator over HTTP)."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from apps.accounts.models import CustomerAccount
from apps.prompts.services import prompt_seed_defaults
from tests.chat.conftest import session_cookie, shown_text


@dataclass
class ChatRun:
    """Everything one user message produced on the socket."""

    frames: list[dict] = field(default_factory=list)

    @property
    def terminal(self) -> list[dict]:
        return [f for f in self.frames if f["type"] in ("done", "error")]

    @property
    def shown_text(self) -> str:
        """What a client following the protocol displays: deltas since the last reset."""
        return shown_text(self.frames)


@database_sync_to_async
def _cookie_and_new_conversation(user) -> tuple[bytes, str]:
    from apps.chat.models import Conversation

    # Each run gets its own conversation, as separate browser tabs resuming their own chats would.
    conversation = Conversation.objects.create(user=user)
    return session_cookie(user), str(conversation.pk)


async def chat_once(user, text: str, *, timeout: float = 30.0) -> ChatRun:
    """Open a socket as `user`, send one message and read until its terminal frame."""
    from supportbot.asgi import application

    cookie, conversation_id = await _cookie_and_new_conversation(user)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/chat/?conversation={conversation_id}",
        headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    run = ChatRun()
    try:
        run.frames.append(await communicator.receive_json_from(timeout=10))  # conversation
        await communicator.send_to(
            text_data=json.dumps({"type": "message", "text": text, "client_id": str(uuid.uuid4())})
        )
        while True:
            frame = await communicator.receive_json_from(timeout=timeout)
            run.frames.append(frame)
            if frame["type"] in ("done", "error"):
                break
    finally:
        await communicator.disconnect()
    return run


@pytest.fixture
def enterprise_customer(db) -> Iterator:
    prompt_seed_defaults()
    user = get_user_model().objects.create_user(username="rel-carol", password="demo-password")
    CustomerAccount.objects.create(user=user, plan="enterprise", billing_status="active", language="fr")
    yield user


# -- real server processes ------------------------------------------------------------------------

PROJECT_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_this_test_run() -> str:
    """A DATABASE_URL that points a child process at the database this test run is using."""
    database = django_settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    host = database.get("HOST") or "127.0.0.1"
    return f"postgres://{database['USER']}@{host}:{database.get('PORT') or 5432}/{database['NAME']}"


def server_env(upstream_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportbot.settings.local",
        "DATABASE_URL": database_url_of_this_test_run(),
        "SECRET_KEY": django_settings.SECRET_KEY,
        "SUPPORTBOT_UPSTREAM_URL": upstream_url,
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "REDIS_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


def start_server(args: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    """Start a server process and wait until /healthz answers."""
    process = subprocess.Popen([sys.executable, *args], cwd=PROJECT_DIR, env=env)
    # Generous: several workers import Django at once, and on a busy two-core machine that alone
    # has taken more than 30 s. A server that never starts still fails the test, only later.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited during start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server on {port} did not start")


@pytest.fixture
def customer(db) -> Iterator:
    """A Pro customer (routed to Sonnet, falling back to Haiku) with the demo prompts published."""
    prompt_seed_defaults()
    user = get_user_model().objects.create_user(username="rel-bob", password="demo-password")
    CustomerAccount.objects.create(user=user, plan="pro", billing_status="active", language="en")
    yield user


def open_socket(port: int, cookie: str, conversation: str | None = None):
    """A websocket to a server process, as a browser on that origin with that session would open it."""
    query = f"?conversation={conversation}" if conversation else ""
    return websockets.connect(
        f"ws://127.0.0.1:{port}/ws/chat/{query}",
        additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"},
        compression=None,
    )


async def ask(ws, text: str, *, on_frame=None) -> list[dict]:
    """Send one message on an open socket; the frames up to and including its terminal frame."""
    await ws.send(json.dumps({"type": "message", "text": text, "client_id": str(uuid.uuid4())}))
    frames: list[dict] = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        frames.append(frame)
        if on_frame is not None:
            on_frame(frame, frames)
        if frame["type"] in ("done", "error"):
            return frames


def stop_process(process: subprocess.Popen, *, timeout: float = 30) -> None:
    """SIGTERM and wait; a process that will not stop is killed (never orphaned) and the test fails."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"{process.args[:4]} did not stop within {timeout} s of SIGTERM") from None
