"""Graceful shutdown: SIGTERM while an answer streams lets it finish and be stored (issue 7)."""

import asyncio
import signal

import pytest

from apps.chat.models import Message
from tests.chat.conftest import session_cookie
from tests.conftest import set_faults
from tests.reliability.conftest import ask, free_port, open_socket, server_env, start_server

pytestmark = pytest.mark.django_db(transaction=True)


async def ask_and_stop_the_server(port: int, cookie: str, server) -> list[dict]:
    def stop_after_the_first_delta(frame: dict, frames: list[dict]) -> None:
        if frame["type"] == "delta" and sum(f["type"] == "delta" for f in frames) == 1:
            server.send_signal(signal.SIGTERM)  # mid-answer

    async with open_socket(port, cookie) as ws:
        await ws.recv()  # conversation
        return await ask(ws, "How do I export my data?", on_frame=stop_after_the_first_delta)


def test_sigterm_lets_the_streaming_answer_finish(customer, llm_upstream) -> None:
    set_faults(llm_upstream, {"token_ms": 15})  # an answer takes a couple of seconds
    port = free_port()
    server = start_server(["manage.py", "serve", "--port", str(port)], port, server_env(llm_upstream.base_url))
    try:
        cookie = session_cookie(customer).decode()
        frames = asyncio.run(ask_and_stop_the_server(port, cookie, server))
        # It exits after the answer; uvicorn re-raises the handled SIGTERM, hence -SIGTERM.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
    done = frames[-1]
    assert done["type"] == "done" and done["status"] == "complete"
    shown = "".join(f["text"] for f in frames if f["type"] == "delta")
    stored = Message.objects.get(pk=done["message_id"])
    assert stored.status == "complete" and stored.text == shown
