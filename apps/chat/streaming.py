"""Coalescing of token deltas into websocket frames.

The first delta goes out at once (time to first token is what users feel); later ones are batched for
up to `interval` seconds or `max_parts` deltas, whichever comes first. A timer flushes a batch that is
waiting when the stream pauses, so text never sits in the buffer longer than `interval`.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

FLUSH_INTERVAL_SECONDS = 0.04
FLUSH_MAX_PARTS = 8


class DeltaCoalescer:
    """Buffers text parts and hands them to `send` as one string per flush, in order."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        interval: float = FLUSH_INTERVAL_SECONDS,
        max_parts: int = FLUSH_MAX_PARTS,
    ) -> None:
        self._send = send
        self._interval = interval
        self._max_parts = max_parts
        self._pending: list[str] = []
        self._sent_any = False
        self._last_flush = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_task: asyncio.Task[None] | None = None
        # Flushes from the timer and from `add` may overlap; a FIFO lock keeps frames in text order
        # (text is taken from the buffer and the lock requested without an await in between).
        self._lock = asyncio.Lock()

    async def add(self, text: str) -> None:
        if not text:
            return
        self._pending.append(text)
        now = time.monotonic()
        if not self._sent_any or len(self._pending) >= self._max_parts or now - self._last_flush >= self._interval:
            await self.flush()
        elif self._timer is None:
            delay = max(0.0, self._interval - (now - self._last_flush))
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_task = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """Send whatever is buffered now."""
        self._cancel_timer()
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._sent_any = True
        self._last_flush = time.monotonic()
        async with self._lock:
            await self._send(text)

    def discard(self) -> None:
        """Drop buffered text (the answer restarts after a Reset); the next delta goes out at once."""
        self._cancel_timer()
        self._pending.clear()
        self._sent_any = False

    async def run_exclusive(self, send: Callable[[], Awaitable[None]]) -> None:
        """Send another frame strictly after any delta already taken from the buffer."""
        async with self._lock:
            await send()

    async def close(self) -> None:
        """Flush and wait for a timer flush in progress, so nothing is sent after the caller's next frame."""
        await self.flush()
        task = self._timer_task
        if task is not None and not task.done():
            await task

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
