"""Issue 3/7: the API key never reaches logs, the database, or what users see."""

import logging

import pytest
from channels.db import database_sync_to_async
from django.apps import apps

from apps.llm import clients
from tests.chat.conftest import ChatSocket
from tests.chat.factories import CustomerAccountFactory
from tests.conftest import set_faults

pytestmark = pytest.mark.django_db(transaction=True)

SENTINEL_KEY = "sk-ant-NOT-A-KEY-sentinel9"  # obviously fake, yet key-shaped


@database_sync_to_async
def everything_stored() -> str:
    """Every text column of every model of ours, concatenated."""
    chunks = []
    for model in apps.get_models():
        if not model.__module__.startswith("apps.") or not model._meta.managed or model._meta.proxy:
            continue
        text_fields = [
            f.name for f in model._meta.fields if f.get_internal_type() in ("CharField", "TextField", "JSONField")
        ]
        for row in model.objects.values_list(*text_fields):
            chunks.append(repr(row))
    return "\n".join(chunks)


async def test_the_api_key_is_never_logged_stored_or_shown(chat_env, settings, monkeypatch, caplog) -> None:
    # A real-looking key, configured the standard way: the SDK reads it from the environment.
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", chat_env.base_url)
    settings.USE_OFFLINE_UPSTREAM = False
    clients.reset_clients()
    caplog.set_level(logging.DEBUG)
    user = await database_sync_to_async(lambda: CustomerAccountFactory(user__username="keyholder").user)()

    frames = []
    for faults in ({}, {"force_errors": [401, 500, 500, 500, 500, 500, 500, 500, 500]}):
        set_faults(chat_env, faults)
        socket = await ChatSocket.open(user)
        await socket.receive()
        await socket.ask("What is my plan?")
        frames += await socket.until_terminal()
        await socket.close()
    clients.reset_clients()

    received = chat_env.control.requests(limit=5)
    assert received, "the emulator saw the requests"
    assert SENTINEL_KEY not in str(received)  # even the emulator's log strips credentials
    assert SENTINEL_KEY not in caplog.text
    assert SENTINEL_KEY not in str(frames)
    assert SENTINEL_KEY not in await everything_stored()
