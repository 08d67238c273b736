"""An answer's text for sockets of other server processes, sent only while one of them watches it.

Sockets of the process writing an answer get its text straight from it (apps/chat/answer_run.py); in
the common case — one customer socket on that process — nothing else is sent. A socket of another
process that follows the answer (the customer's second tab, a page reloaded there, an agent in the
inbox) asks for its text: it sends `events.TEXT_WANTED` to `events.RELAY_GROUP`, which one channel
per process joins (`relay_listen`), and repeats the request every WANT_REFRESH_SECONDS while it waits
for the answer. The process writing that answer then publishes, in order with the answer's other
control events, the text so far, and — until WANT_TTL_SECONDS pass without a request — the new text
at most every RELAY_INTERVAL_SECONDS, as `events.ANSWER_TEXT` to the conversation's group.

Why a request and not always: tokens crossing Redis for every answer would tax the answer nobody else
watches. Why a process channel and not the asking socket: that socket may have closed (the answer
goes on). Why refreshed: a request is lost when it crosses the owner's start, and a watcher that went
away must stop the forwarding without saying so.

Every piece says where it belongs — `generation` (the resets before it) and `start` (its offset in
the text since that reset) — so a socket shows each character once whatever overlaps, notices a
reset (a retry, a fallback, the final text differing) and a gap (it then asks for the text so far).
At the end the socket reads the stored reply and sends only what it lacks of it (`RemoteText.final_frames`),
so what it shows is what is stored and its terminal frame is still the one from the stored result.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from apps.chat import events

logger = logging.getLogger(__name__)

# How often the owner publishes the text a remote watcher has not had yet (coalesced, not per token).
RELAY_INTERVAL_SECONDS = 0.1
# A piece is published sooner once this much text is waiting.
RELAY_MAX_CHARS = 2000
# A remote watcher repeats its request this often; the owner forwards until WANT_TTL_SECONDS pass
# without one (a watcher that went away stops the forwarding by saying nothing).
WANT_REFRESH_SECONDS = 2.0
WANT_TTL_SECONDS = 6.0
# Every this many refreshes (~30 s) a remote watcher reads the reply: one whose process died is marked
# failed once stale (docs/protocol.md), and ends the watch with its terminal frame.
STORED_CHECK_ROUNDS = 15
# A remote watcher that finds a gap asks for the text so far again at most this often.
ASK_AGAIN_SECONDS = 1.0
# channels_redis forgets a group member after a day (group_expiry): the process channel joins again.
REJOIN_SECONDS = 3600.0


# -- the process writing the answer ---------------------------------------------------------------


class TextRelay:
    """The forwarding of one answer's text to other processes' sockets; created at the first request.

    `publish(**fields)` sends one `ANSWER_TEXT` event after the run's earlier control events. Not
    thread-safe; everything runs on the answer's event loop.
    """

    def __init__(self, publish: Callable[..., object]) -> None:
        self._publish = publish
        self.wanted_until = 0.0
        self._pending: list[str] = []
        self._pending_chars = 0
        self._pending_start = 0
        self._pending_generation = 0
        self._timer: asyncio.TimerHandle | None = None

    def active(self) -> bool:
        """Whether a socket of another process asked for the text within WANT_TTL_SECONDS."""
        return time.monotonic() < self.wanted_until

    def want(self, *, fresh: bool, generation: int, text: str) -> None:
        """A request: `text` is everything sent since the last reset (`generation` resets so far).
        The text so far is published for a fresh request, or when the forwarding was off (a socket
        may have missed pieces meanwhile); a refresh only keeps the forwarding on."""
        was_active = self.active()
        self.wanted_until = time.monotonic() + WANT_TTL_SECONDS
        if fresh or not was_active:
            self._drop_pending()  # the text so far holds it
            self._publish(generation=generation, start=0, text=text)

    def add(self, *, generation: int, start: int, text: str) -> None:
        """Text just sent to this process's watchers; published within RELAY_INTERVAL_SECONDS."""
        if not self.active():
            return
        if self._pending and generation != self._pending_generation:
            self.flush()
        if not self._pending:
            self._pending_start, self._pending_generation = start, generation
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._pending_chars >= RELAY_MAX_CHARS:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RELAY_INTERVAL_SECONDS, self.flush)

    def reset(self, *, generation: int, reason: str) -> None:
        """The text restarts (a retry, a fallback, the final text differing): sockets elsewhere drop theirs."""
        self.flush()
        if self.active():
            self._publish(generation=generation, start=0, text="", reason=reason)

    def flush(self) -> None:
        """Publish the waiting text now (before the answer's `reply_finished`)."""
        if self._pending:
            self._publish(generation=self._pending_generation, start=self._pending_start, text="".join(self._pending))
        self._drop_pending()

    def _drop_pending(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        self._pending_chars = 0


_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[asyncio.Task[None]]] = weakref.WeakKeyDictionary()


def relay_listen(on_wanted: Callable[[dict[str, Any]], None]) -> None:
    """Make this process answer requests for text (once per event loop; at its first answer).

    A no-op with the in-memory channel layer: one process, no remote watchers. `on_wanted(event)` is
    called for each `TEXT_WANTED` event (it finds the answer, if this process writes it).
    """
    loop = asyncio.get_running_loop()
    if loop in _listeners:
        return
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        _listeners[loop] = []
        return
    channel: asyncio.Future[str] = loop.create_future()
    tasks = [loop.create_task(_join(layer, channel)), loop.create_task(_receive(layer, channel, on_wanted))]
    _listeners[loop] = tasks


async def _join(layer: Any, channel: asyncio.Future[str]) -> None:
    name = await layer.new_channel()
    channel.set_result(name)
    while True:
        try:
            await layer.group_add(events.RELAY_GROUP, name)
        except Exception:  # Redis is away: the requests wait, the answers do not
            logger.warning("could not join the text relay group", exc_info=True)
            await asyncio.sleep(5.0)
            continue
        await asyncio.sleep(REJOIN_SECONDS)


async def _receive(layer: Any, channel: asyncio.Future[str], on_wanted: Callable[[dict[str, Any]], None]) -> None:
    name = await channel
    while True:
        try:
            message = await layer.receive(name)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("could not receive a text request", exc_info=True)
            await asyncio.sleep(1.0)
            continue
        if message.get("type") == events.TEXT_WANTED:
            try:
                on_wanted(message)
            except Exception:
                logger.exception("could not answer a text request")


async def text_want(conversation_id: object, message_id: int, *, fresh: bool) -> None:
    """Ask the process writing `message_id` for its text (`fresh`: the text so far first). Never raises."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return
    try:
        await layer.group_send(
            events.RELAY_GROUP,
            {
                "type": events.TEXT_WANTED,
                "conversation_id": str(conversation_id),
                "message_id": message_id,
                "fresh": fresh,
                "origin": events.PROCESS_ID,
            },
        )
    except Exception:
        logger.warning("could not ask for an answer's text", exc_info=True)


# -- a socket of another process ------------------------------------------------------------------


@dataclass
class RemoteText:
    """What a socket has shown of an answer another process writes."""

    generation: int = 0
    shown: list[str] = field(default_factory=list)  # since the last reset
    length: int = 0
    asked_at: float = float("-inf")

    def apply(self, event: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """The frames an `ANSWER_TEXT` event gives this socket, and whether to ask for the text so far
        (it missed a piece)."""
        try:
            generation, start, text = int(event["generation"]), int(event["start"]), str(event["text"])
        except (KeyError, TypeError, ValueError):
            return [], False
        frames: list[dict[str, Any]] = []
        if generation < self.generation:  # from before a reset this socket already had
            return frames, False
        if generation > self.generation:
            if start > 0:  # its reset was missed
                return frames, self._ask()
            if self.length:
                frames.append({"type": "reset", "reason": str(event.get("reason") or "retry")})
            self.generation, self.shown, self.length = generation, [], 0
        if start > self.length:
            return frames, self._ask()
        new = text[self.length - start :]
        if new:
            self.shown.append(new)
            self.length += len(new)
            frames.append({"type": "delta", "text": new})
        return frames, False

    def asked(self) -> None:
        """A request for the text so far was sent."""
        self.asked_at = time.monotonic()

    def _ask(self) -> bool:
        if time.monotonic() - self.asked_at < ASK_AGAIN_SECONDS:  # the text so far is on its way
            return False
        self.asked()
        return True

    def final_frames(self, stored_text: str, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The stored reply's frames (`replies.stored_reply_frames`: its whole text as one `delta`, then
        its terminal frame) for this socket: only the text it lacks — or `reset` and the whole text if
        what it showed differs — then the terminal frame. A failed reply's error frame comes alone,
        after the text shown, as for a watcher of the writing process."""
        terminal = frames[-1]
        if terminal.get("type") != "done":
            return [terminal]
        shown = "".join(self.shown)
        if stored_text == shown:
            return [terminal]
        if stored_text.startswith(shown):
            return [{"type": "delta", "text": stored_text[len(shown) :]}, terminal]
        text = [{"type": "delta", "text": stored_text}] if stored_text else []
        return [{"type": "reset", "reason": "final_text"}, *text, terminal]
