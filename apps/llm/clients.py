"""The Anthropic SDK clients, configured once from settings.

Three configurations (see supportbot/settings/anthropic.py):

- offline (no key, no base URL): the bundled emulator at OFFLINE_UPSTREAM_URL with a placeholder key;
- ANTHROPIC_BASE_URL without a key: that server with the same placeholder (keyless compatible servers);
- otherwise the SDK reads ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL itself, so the key never passes
  through our code, settings or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import anthropic
import httpx2
from django.conf import settings

_lock = threading.Lock()
_sync_client: anthropic.Anthropic | None = None
# An AsyncAnthropic owns an httpx2 connection pool bound to the event loop that first used it, so
# keep one per loop (Channels, Celery's async_to_sync and tests may each run their own loop).
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anthropic.AsyncAnthropic] = (
    weakref.WeakKeyDictionary()
)
_loopless_async_client: anthropic.AsyncAnthropic | None = None


def _timeout(*, streaming: bool) -> httpx2.Timeout:
    """Connect / read / total limits from settings.

    A stream sends bytes continuously (text or pings), so a silent gap as long as the first-token
    timeout means the connection is dead. A non-streaming reply arrives in one piece after the whole
    generation, so its read limit is the total budget.
    """
    total = settings.LLM_TOTAL_TIMEOUT_SECONDS
    read = settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS if streaming else total
    return httpx2.Timeout(total, connect=settings.LLM_CONNECT_TIMEOUT_SECONDS, read=read)


def _client_kwargs(*, streaming: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        # The SDK would otherwise retry twice by itself, invisibly: our retry loop (apps.llm.retry)
        # owns retries so every attempt is logged, priced, counted by the circuit breaker and can
        # fall back to another model instead of hammering an overloaded one.
        "max_retries": 0,
        "timeout": _timeout(streaming=streaming),
    }
    if settings.USE_OFFLINE_UPSTREAM:
        kwargs["base_url"] = settings.OFFLINE_UPSTREAM_URL
        kwargs["api_key"] = settings.OFFLINE_API_KEY
    elif settings.ANTHROPIC_BASE_URL_CONFIGURED and not settings.ANTHROPIC_API_KEY_CONFIGURED:
        # The SDK reads ANTHROPIC_BASE_URL itself; a keyless server still needs some credential.
        kwargs["api_key"] = settings.OFFLINE_API_KEY
    return kwargs


# Resolved once the request made in this context has left: its body is written, or the connection has to
# be opened first (the wait is then on the network), or it failed. See `request_sent_signal`.
_request_sent: ContextVar[asyncio.Future[None] | None] = ContextVar("request_sent", default=None)
_SENT_TRACE_EVENTS = ("send_request_body.complete", "send_request_body.failed", "connect_tcp.started")


@contextlib.contextmanager
def request_sent_signal(future: asyncio.Future[None]) -> Iterator[None]:
    """Resolve `future` when the next upstream request of a task created inside this block has been sent.

    For work that should not compete for the GIL with writing a request (the chat consumer stores the
    question only once the upstream call is on its way). Tasks copy the context when they are created.
    """
    token = _request_sent.set(future)
    try:
        yield
    finally:
        _request_sent.reset(token)


async def _signal_when_sent(request: httpx2.Request) -> None:
    """httpx2 request hook: attach a transport trace that resolves the context's `_request_sent`."""
    future = _request_sent.get()
    if future is None or future.done():
        return

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(_SENT_TRACE_EVENTS) and not future.done():
            future.set_result(None)

    request.extensions = {**request.extensions, "trace": trace}


def get_client() -> anthropic.Anthropic:
    """The process-wide synchronous client (JSON tasks, summaries, token counts, batches)."""
    global _sync_client
    with _lock:
        if _sync_client is None:
            _sync_client = anthropic.Anthropic(**_client_kwargs(streaming=False))
        return _sync_client


def get_async_client() -> anthropic.AsyncAnthropic:
    """The async client for the running event loop (streamed chat answers)."""
    global _loopless_async_client
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _lock:
        if loop is None:
            if _loopless_async_client is None:
                _loopless_async_client = anthropic.AsyncAnthropic(**_client_kwargs(streaming=True))
            return _loopless_async_client
        client = _async_clients.get(loop)
        if client is None:
            http_client = anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [_signal_when_sent]})
            client = anthropic.AsyncAnthropic(**_client_kwargs(streaming=True), http_client=http_client)
            _async_clients[loop] = client
        return client


def reset_clients() -> None:
    """Forget the clients so the next call reads settings again (tests change the upstream URL)."""
    global _sync_client, _loopless_async_client
    with _lock:
        if _sync_client is not None:
            _sync_client.close()
        _sync_client = None
        # Async clients are dropped, not closed: closing needs their own loop, which may be gone.
        _async_clients.clear()
        _loopless_async_client = None
