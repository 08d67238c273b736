"""How answer text reaches the socket: coalescing deltas into frames, and first tokens before later ones.

The first delta goes out at once (time to first token is what users feel); later ones are batched for
up to `interval` seconds or `max_parts` deltas, whichever comes first. A timer flushes a batch that is
waiting when the stream pauses, so text never sits in the buffer longer than `interval`.
"""

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator

FLUSH_INTERVAL_SECONDS = 0.04
FLUSH_MAX_PARTS = 8
# The longest an answer already streaming pauses at a time while new questions are being stored.
MAX_RELAY_PAUSE_SECONDS = 0.1


class QuestionsFirst:
    """While new questions are being stored, answers already streaming pause before relaying more text.

    A question's first delta waits for its commit, which runs in a worker thread; under a burst the event
    loop relaying the answers already started holds the GIL that thread needs after every database
    call, so the commits of the last questions queued behind everyone else's tokens (bench/ws_bench.py:
    ~9 ms per commit of ~0.5 ms). Users feel the time to the first token most; a later token held back a
    few milliseconds is invisible (deltas are coalesced anyway), and the upstream's text waits in the
    socket buffers, nothing is dropped. Each pause is bounded, so a steady flow of questions cannot
    starve an answer. One per event loop.
    """

    def __init__(self) -> None:
        self._storing = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        """Around the storage of a question (its first delta waits for it)."""
        self._storing += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._storing -= 1
            if self._storing == 0:
                self._idle.set()

    async def relay_turn(self) -> None:
        """Return at once when no question is being stored; else when none is, or after the longest pause."""
        if self._idle.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(MAX_RELAY_PAUSE_SECONDS):
                await self._idle.wait()


_questions_first: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, QuestionsFirst] = weakref.WeakKeyDictionary()


def questions_first() -> QuestionsFirst:
    """The `QuestionsFirst` of the running event loop."""
    loop = asyncio.get_running_loop()
    gate = _questions_first.get(loop)
    if gate is None:
        gate = _questions_first[loop] = QuestionsFirst()
    return gate


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
