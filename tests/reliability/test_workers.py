"""`manage.py serve --workers N`: several server processes on one port, supervised, drained on SIGTERM."""

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.chat.models import Message
from apps.core.management.commands.serve import MIN_WORKER_LIFETIME_SECONDS
from tests.chat.conftest import session_cookie
from tests.conftest import set_faults
from tests.reliability.conftest import ask, free_port, open_socket, server_env, start_server, stop_process

pytestmark = pytest.mark.django_db(transaction=True)


def test_several_workers_need_redis(settings) -> None:
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("serve", "--workers", "2")


def worker_pids(supervisor_pid: int) -> set[int]:
    """The supervisor's server processes (its children other than multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read_text().split()
    return {
        int(pid)
        for pid in children
        if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    }


def two_workers(supervisor_pid: int, other_than: set[int] | None = None) -> set[int] | None:
    pids = worker_pids(supervisor_pid)
    return pids if len(pids) == 2 and pids != other_than else None


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


async def ask_then(port: int, cookie: str, text: str, on_first_delta=None) -> list[dict]:
    def on_frame(frame: dict, frames: list[dict]) -> None:
        if on_first_delta and frame["type"] == "delta" and sum(f["type"] == "delta" for f in frames) == 1:
            on_first_delta()

    async with open_socket(port, cookie) as ws:
        await ws.recv()  # conversation
        return await ask(ws, text, on_frame=on_frame)


@pytest.mark.redis
def test_workers_serve_restart_and_drain(customer, llm_upstream, redis_url) -> None:
    port = free_port()
    env = server_env(llm_upstream.base_url, REDIS_URL=redis_url)
    supervisor = start_server(["manage.py", "serve", "--port", str(port), "--workers", "2"], port, env)
    try:
        workers = wait_for(lambda: two_workers(supervisor.pid))
        workers_seen = time.monotonic()  # both had started by then
        cookie = session_cookie(customer).decode()
        frames = asyncio.run(ask_then(port, cookie, "How do I reset my password?"))
        assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete"

        # A worker that dies is replaced; the port keeps answering. (One that dies during start-up
        # stops the supervisor instead, so the kill comes after the start-up window.)
        time.sleep(max(0.0, workers_seen + MIN_WORKER_LIFETIME_SECONDS - time.monotonic()))
        os.kill(min(workers), signal.SIGKILL)
        replaced = wait_for(lambda: two_workers(supervisor.pid, other_than=workers))
        assert min(workers) not in replaced
        for _ in range(4):  # several connections: whichever worker accepts them answers
            frames = asyncio.run(ask_then(port, cookie, "Where is my invoice?"))
            assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete"

        # SIGTERM to the supervisor mid-answer: the workers drain, the answer completes and is stored.
        set_faults(llm_upstream, {"token_ms": 15})
        frames = asyncio.run(ask_then(port, cookie, "How do I export my data?", lambda: supervisor.terminate()))
        assert supervisor.wait(timeout=40) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)
    finally:
        stop_process(supervisor)
    done = frames[-1]
    assert done["type"] == "done" and done["status"] == "complete"
    stored = Message.objects.get(pk=done["message_id"])
    assert stored.status == "complete" and stored.text == "".join(f["text"] for f in frames if f["type"] == "delta")


def test_a_worker_that_cannot_start_stops_the_supervisor() -> None:
    """No restart loop: a worker dying during start-up (here, an app that cannot be imported) ends it."""
    import uvicorn

    from apps.core.management.commands.serve import WorkerSupervisor

    config = uvicorn.Config("supportbot.no_such_module:application", host="127.0.0.1", port=free_port())
    started = time.monotonic()
    with pytest.raises(CommandError, match="during start-up"):
        WorkerSupervisor(config, 2).run()
    assert time.monotonic() - started < 30
