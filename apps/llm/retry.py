"""When and how long to wait before trying an upstream call again.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many
clients hit by the same overload, instead of having them all come back at once. A server-sent
`retry-after-ms` / `retry-after` wins over our schedule: it knows when capacity returns.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anthropic
import httpx2
from django.conf import settings

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404})
# A retry-after beyond this is treated as "not soon": the caller falls back instead of waiting.
MAX_HONOURED_RETRY_AFTER_SECONDS = 60.0


class FirstTokenTimeout(Exception):
    """No text arrived within LLM_FIRST_TOKEN_TIMEOUT_SECONDS (raised by the gateway, retried)."""


class StreamCut(Exception):
    """A stream ended without `message_stop` (the connection dropped mid-answer)."""


def status_of(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, anthropic.APIStatusError) else None


def is_malformed_response(exc: BaseException) -> bool:
    """A body (or SSE event) that is not the JSON the API promises: the server's fault, like a 500."""
    return isinstance(exc, (anthropic.APIResponseValidationError, ValueError))


def is_retryable(exc: BaseException) -> bool:
    """408/409/429/5xx/529, connection errors and timeouts, broken streams and malformed bodies."""
    if isinstance(exc, (anthropic.APIConnectionError, FirstTokenTimeout, TimeoutError, StreamCut)):
        return True
    if isinstance(exc, httpx2.TransportError):  # raised directly when a stream's connection breaks
        return True
    if is_malformed_response(exc):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status == 200:
            return True  # an SSE `error` event after a 200: the stream broke (overloaded, api_error)
        if status in NEVER_RETRY_STATUSES:
            return False
        return status in RETRYABLE_STATUSES or status >= 500
    return False


def retry_after_seconds(exc: BaseException, *, now: Callable[[], float] = time.time) -> float | None:
    """The server's requested wait from `retry-after-ms`, else `retry-after` (seconds or HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - now())


@dataclass
class RetryPolicy:
    """Attempts per model and the waits between them. `sleep`/`async_sleep` are injectable for tests."""

    max_attempts: int
    initial_seconds: float
    max_seconds: float
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)

    @classmethod
    def from_settings(cls, **overrides) -> RetryPolicy:
        values = {
            "max_attempts": settings.LLM_MAX_ATTEMPTS,
            "initial_seconds": settings.LLM_BACKOFF_INITIAL_SECONDS,
            "max_seconds": settings.LLM_BACKOFF_MAX_SECONDS,
        }
        values.update(overrides)
        return cls(**values)

    def backoff(self, attempt: int) -> float:
        """Full-jitter wait after failed attempt `attempt` (1-based): U(0, min(cap, initial·2^(attempt-1)))."""
        ceiling = min(self.max_seconds, self.initial_seconds * (2 ** (attempt - 1)))
        return self.rand() * ceiling

    def delay(self, exc: BaseException, attempt: int) -> float:
        """The wait before the next attempt: the server's retry-after when given, else the backoff."""
        server = retry_after_seconds(exc)
        if server is not None:
            return server
        return self.backoff(attempt)

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether to try the same model again after failed attempt `attempt`."""
        if attempt >= self.max_attempts or not is_retryable(exc):
            return False
        server = retry_after_seconds(exc)
        return server is None or server <= MAX_HONOURED_RETRY_AFTER_SECONDS
