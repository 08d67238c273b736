"""Event-loop helpers of the chat's sockets and answers: ORM code off the loop, frames encoded once, and
background tasks kept alive until they end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

from channels.db import DatabaseSyncToAsync


def db(function: Any) -> Any:
    """Run ORM code off the event loop on the shared worker pool, closing stale connections around it.

    Not Channels' default `database_sync_to_async`, which is thread-sensitive: without a per-consumer
    context every consumer's ORM call then queues on ONE thread, and with hundreds of sockets the
    questions wait behind each other (bench/ws_bench.py). Each call here is self-contained (its own
    transaction), so any pool thread may run it.
    """
    return DatabaseSyncToAsync(function, thread_sensitive=False)


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def aclose_quietly(stream: Any) -> None:
    try:
        await stream.aclose()
    except (RuntimeError, StopAsyncIteration):
        pass


# asyncio keeps only weak references to tasks: an answer that outlives every socket watching it must
# stay referenced until it is stored.
_running_answers: set[asyncio.Future[Any]] = set()


def keep_running(task: asyncio.Future[Any]) -> None:
    """Hold `task` until it ends (an answer, or a frame sent in the background); drained at shutdown."""
    _running_answers.add(task)
    task.add_done_callback(_running_answers.discard)


def background(awaitable: Awaitable[Any]) -> None:
    """Run `awaitable` as a task of its own, referenced until it ends."""
    keep_running(asyncio.ensure_future(awaitable))


async def running_answers_drain(*, timeout: float) -> int:
    """Wait up to `timeout` seconds for the answers being generated in this process to finish.

    Called on graceful shutdown once no new connections are accepted. Returns how many were still
    running; those are cancelled by the server afterwards and stored as `incomplete`.
    """
    pending = {task for task in _running_answers if not task.done()}
    if pending:
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        return len(still_running)
    return 0
