"""What every attempt at a Claude call shares: its meter, its call-log row, how its error is named.

One `LLMCall` row per attempt that reached the upstream (apps.llm.services), sync or async; the async
write is shielded from cancellation because the upstream saw, and billed, the attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anthropic
import httpx2
from channels.db import DatabaseSyncToAsync

from apps.core.cache import cache_call
from apps.llm.models import LLMCall
from apps.llm.retry import FirstTokenTimeout, StreamCut, is_malformed_response, is_retryable, status_of
from apps.llm.services import llm_call_record
from apps.llm.types import PromptParts, ReplyRef

logger = logging.getLogger(__name__)


def db_async(function: Any) -> Any:
    """ORM work from the chat stream, on any worker thread.

    Not the thread-sensitive default: that runs every consumer's call on ONE shared thread, so with
    hundreds of answers streaming their call-log writes and route reads queue behind each other.
    Each call here is self-contained (its own transaction) and closes stale connections around it.
    """
    return DatabaseSyncToAsync(function, thread_sensitive=False)


ResultT = TypeVar("ResultT")


async def breaker_call(function: Callable[[str], ResultT], model: str) -> ResultT:
    """A circuit-breaker call (its state lives in the cache, Redis in production)."""
    return await cache_call(function, model)


# --------------------------------------------------------------------------------------------------
# Shared attempt bookkeeping


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass
class Meter:
    """What one attempt produced, filled in as the response (or stream) arrives."""

    started: float
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    # Of the cache write, what was written with the 1-hour TTL (priced 2× instead of 1.25×).
    cache_creation_1h_input_tokens: int = 0
    stop_reason: str = ""
    request_id: str = ""
    ttft_ms: int | None = None
    text: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    # Complete `tool_use` blocks ({type, id, name, input}), in the order the model wrote them.
    tool_uses: list[dict[str, Any]] = field(default_factory=list)

    def absorb_usage(self, usage: Any) -> None:
        """Take the token counts from an SDK `Usage` object or a raw stream event's `usage` dict."""
        get = usage.get if isinstance(usage, dict) else (lambda name: getattr(usage, name, None))
        for name in _USAGE_FIELDS:
            value = get(name)
            if value is not None:
                setattr(self, name, value)
        # `cache_creation: {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}` (optional in the
        # API's usage; the SDK's `CacheCreation` type); message_delta events carry no breakdown.
        breakdown = get("cache_creation")
        if breakdown is not None:
            written_1h = (
                breakdown.get("ephemeral_1h_input_tokens")
                if isinstance(breakdown, dict)
                else getattr(breakdown, "ephemeral_1h_input_tokens", None)
            )
            if written_1h is not None:
                self.cache_creation_1h_input_tokens = written_1h

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


@dataclass(frozen=True)
class CallMeta:
    task_type: str
    prompt: PromptParts | None
    conversation_id: str | None
    reply: ReplyRef | None  # read when an attempt is logged: the chat consumer may fill it in late
    route_reason: str


def error_type(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        kind = getattr(exc, "type", None) or f"http_{exc.status_code}"
        return f"stream_{kind}" if exc.status_code == 200 else str(kind)
    if isinstance(exc, FirstTokenTimeout):
        return "first_token_timeout"
    if isinstance(exc, TimeoutError):
        return "total_timeout"
    if isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
        return "cancelled"
    if is_malformed_response(exc):
        return "malformed_response"
    if isinstance(exc, StreamCut):
        return "stream_cut"
    if isinstance(exc, httpx2.TransportError):
        return "connection_error"
    return type(exc).__name__


def is_prompt_too_long(exc: BaseException) -> bool:
    return status_of(exc) == 400 and "prompt is too long" in str(exc).lower()


def record_kwargs(
    meta: CallMeta, *, model: str, attempt: int, fallback_step: int, meter: Meter, error: BaseException | None
) -> dict[str, Any]:
    prompt = meta.prompt
    return {
        "task_type": meta.task_type,
        "model": model,
        "prompt_slug": prompt.slug if prompt else "",
        "prompt_version": prompt.version if prompt else "",
        "prompt_version_id": prompt.version_id if prompt else None,
        "knowledge_snapshot_id": prompt.knowledge_snapshot_id if prompt else None,
        "conversation_id": meta.conversation_id or "",
        "message_id": meta.reply.message_id if meta.reply else None,
        "route_reason": meta.route_reason,
        "attempt": attempt,
        "fallback_step": fallback_step,
        "input_tokens": meter.input_tokens,
        "output_tokens": meter.output_tokens,
        "cache_creation_input_tokens": meter.cache_creation_input_tokens,
        "cache_read_input_tokens": meter.cache_read_input_tokens,
        "cache_creation_1h_input_tokens": meter.cache_creation_1h_input_tokens,
        "ttft_ms": meter.ttft_ms,
        "latency_ms": meter.elapsed_ms(),
        "stop_reason": meter.stop_reason,
        "status": LLMCall.Status.ERROR if error else LLMCall.Status.OK,
        "error_type": error_type(error) if error else "",
        "refused": meter.stop_reason == "refusal",
        "output_chars": len(meter.text),
        "request_id": meter.request_id or (getattr(error, "request_id", None) or ""),
    }


def counts_against_breaker(exc: BaseException) -> bool:
    # Only the model's own trouble opens its circuit; a malformed request would fail anywhere.
    return is_retryable(exc)


async def record_attempt(meta: CallMeta, *, error: BaseException | None, **kwargs: Any) -> None:
    """Write the call-log row of an attempt that reached the upstream, even if our task is cancelled meanwhile.

    The write runs in a worker thread; a cancelled `await` on it would also cancel the thread's job while
    it still waits for a free worker (busy under load), losing the row of an attempt the upstream saw and
    billed. So the write is shielded, and a cancellation waits for it before going on.
    """
    write = asyncio.ensure_future(db_async(llm_call_record)(**record_kwargs(meta, error=error, **kwargs)))
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        await asyncio.wait([write])
        raise


async def record_abandoned(meta: CallMeta, *, error: BaseException, **kwargs: Any) -> None:
    try:
        await record_attempt(meta, error=error, **kwargs)
    except Exception:  # never mask the cancellation itself
        logger.exception("could not log an abandoned chat attempt")


def message_text(message: anthropic.types.Message | None) -> str:
    """The text blocks of a non-streamed answer, joined."""
    if message is None:
        return ""
    return "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
