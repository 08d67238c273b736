"""One answer being written in this process — stream, stop, finish, store — and the sockets it is sent to.

Started by apps/chat/answering.py once its question is stored and acknowledged; registered as the
conversation's running answer in apps/chat/watchers.py. Frames are encoded once and written to each
watcher in order; a watcher that attaches mid-answer is caught up under the same lock that orders
the deltas, so it misses and repeats nothing.

Guarantees kept from the single-socket design: the question is stored (and acknowledged by the
caller) before any of its text is sent; the text every watcher shows — deltas since the last reset —
is what is stored; a retry or a fallback sends `reset`; a stop (from any watcher allowed to) stores
the text so far as `incomplete`; every watcher gets exactly one terminal frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser

from apps.chat import events, services, tool_turns
from apps.chat.loop import aclose_quietly, background, db, dumps, keep_running, ms_since
from apps.chat.models import Message
from apps.chat.payloads import cited_sources, message_payload
from apps.chat.relay import TextRelay
from apps.chat.replies import GENERATION_FAILED, done_frame
from apps.chat.streaming import DeltaCoalescer, questions_first
from apps.chat.watchers import Watcher, run_release
from apps.core.exceptions import ApplicationError
from apps.core.metrics import CHAT_MESSAGES
from apps.llm.gateway import chat_stream
from apps.llm.types import (
    ChatOutcome,
    ChatRequest,
    Finished,
    HistorySummarised,
    Reset,
    Retrying,
    TextDelta,
)

if TYPE_CHECKING:
    from apps.chat.answering import StoredQuestion

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class AnswerRun:
    """One answer being written in this process, and the sockets it is sent to."""

    stored: StoredQuestion
    user: AbstractBaseUser
    client_id: str | None
    watchers: set[Watcher]
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False
    finishing: bool = False  # the gateway finished: a late `stop` no longer changes the outcome
    seen: list[str] = field(default_factory=list)  # text of the answer since the last reset (stored on stop)
    sent: list[str] = field(default_factory=list)  # the part of `seen` already sent (caught up to new watchers)
    sent_chars: int = 0  # len("".join(sent)): where the next piece starts, for sockets of other processes
    generation: int = 0  # resets sent so far
    # Forwards the text to sockets of other processes while one asks for it (apps/chat/relay.py);
    # None until one does, so the common case pays one attribute check per flush.
    relay: TextRelay | None = None
    # Every tool frame sent, caught up to new watchers; a reset keeps them (its progress lines and cards
    # stay on the page: only the text restarts).
    tool_frames: list[dict[str, Any]] = field(default_factory=list)
    _published: asyncio.Future[None] | None = None  # the last control event published (see _publish_in_order)
    released: bool = False  # stored, and no longer the conversation's running answer: nobody attaches
    _coalescer: DeltaCoalescer | None = None

    def __post_init__(self) -> None:
        self._coalescer = DeltaCoalescer(self._send_delta)

    @property
    def reply(self) -> Message:
        reply = self.stored.submission.reply
        if reply is None:
            raise RuntimeError("An answer needs its assistant row.")
        return reply

    @property
    def conversation_id(self) -> object:
        return self.reply.conversation_id

    def _take_request(self) -> ChatRequest:
        prepared, self.stored.prepared = self.stored.prepared, None
        if isinstance(prepared, Exception):
            raise prepared
        if prepared is None:
            raise RuntimeError("The answer has no prepared request.")
        return prepared

    # -- watchers --

    def _started_frame(self) -> dict[str, Any]:
        question = self.stored.submission.question
        return {"type": "answer_started", "reply_id": self.reply.pk, "question": message_payload(question)}

    def announce(self, *, exclude: Watcher) -> None:
        """Tell the other watchers here, and the other processes, that this answer started. The frame is
        queued before any of the answer's text (the run's task has not started yet)."""
        others = [watcher for watcher in self.watchers if watcher is not exclude]
        if others:
            encoded = dumps(self._started_frame())
            background(self._coalescer.run_exclusive(lambda: self._send_to(others, encoded)))
        self._publish_in_order(
            events.ANSWER_STARTED,
            message_id=self.reply.pk,
            question=message_payload(self.stored.submission.question),
        )

    async def attach(self, watcher: Watcher, *, knows_reply: bool) -> int | None:
        """Send a new watcher what it missed, then make it one of the run's watchers (in that order,
        under the lock that orders deltas, so it misses and repeats nothing).

        What it missed is the `answer_started` frame, the tool frames (so a card shown before a reload is
        on the reloaded page, clickable), the decided state of those cards and the text so far. The
        decisions are read first, outside the lock; a card decided after that read reaches the watcher
        as `action_decided` through the conversation's group, which it joined before watching.

        Returns the reply's id, or None if the answer was stored meanwhile (it ended while the
        decisions were read, or the lock was held by its end): the watcher then reads the stored result.
        """
        cards = [frame["action_id"] for frame in self.tool_frames if frame["type"] == "confirmation_requested"]
        decided = await db(tool_turns.decided_frames)(cards) if cards else []

        attached = False

        async def catch_up() -> None:
            nonlocal attached
            if self.released:  # its terminal frame went out to the watchers it had
                return
            attached = True
            if watcher in self.watchers:
                return
            if not knows_reply:
                await watcher.watch_send(dumps(self._started_frame()))
            for frame in [*self.tool_frames, *decided]:
                await watcher.watch_send(dumps(frame))
            if self.sent:
                await watcher.watch_send(dumps({"type": "delta", "text": "".join(self.sent)}))
            self.watchers.add(watcher)

        await self._coalescer.run_exclusive(catch_up)
        return self.reply.pk if attached else None

    def text_wanted(self, *, fresh: bool) -> None:
        """A socket of another process asked for this answer's text (apps/chat/relay.py)."""
        if self.released:  # stored: that socket reads the result
            return
        if self.relay is None:
            reply_id = self.reply.pk
            self.relay = TextRelay(
                lambda **fields: self._publish_in_order(events.ANSWER_TEXT, message_id=reply_id, **fields)
            )
        self.relay.want(fresh=fresh, generation=self.generation, text="".join(self.sent))

    def stop(self) -> None:
        if self.finishing or self.task is None or self.task.done():
            return  # stopping when the answer has just finished is a no-op
        self.stop_requested = True
        self.task.cancel()

    async def _send_to(self, watchers: list[Watcher] | set[Watcher], encoded: str) -> None:
        for watcher in list(watchers):
            await watcher.watch_send(encoded)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_to(self.watchers, dumps(frame))

    def _publish_in_order(self, event_type: str, **fields: Any) -> asyncio.Future[None]:
        """Publish a control event to the conversation's group after those this run published before,
        without holding up the answer (a slow channel layer delays the events, not the tokens).

        Sockets of other processes rely on the order: `answer_started` makes them follow the reply
        (they ignore tool frames of a reply they do not follow), and `reply_finished` ends it.
        """
        previous = self._published

        async def publish() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await events.publish(self.conversation_id, event_type, **fields)

        task = asyncio.ensure_future(publish())
        keep_running(task)
        self._published = task
        return task

    async def _send_tool_frame(self, frame: dict[str, Any]) -> None:
        self.tool_frames.append(frame)
        await self._send(frame)

    async def _send_delta(self, text: str) -> None:
        start = self.sent_chars
        self.sent.append(text)
        self.sent_chars += len(text)
        if self.relay is not None:
            self.relay.add(generation=self.generation, start=start, text=text)
        await self._send_to(self.watchers, dumps({"type": "delta", "text": text}))

    async def _send_reset(self, reason: str) -> None:
        """The watchers drop the text so far (here and, when forwarding, in other processes)."""
        self.sent.clear()
        self.sent_chars = 0
        self.generation += 1
        if self.relay is not None:
            self.relay.reset(generation=self.generation, reason=reason)
        await self._send({"type": "reset", "reason": reason})

    # -- generation --

    async def generate(self) -> None:
        started = time.monotonic()
        reply = self.reply
        coalescer = self._coalescer
        gate = questions_first()
        ttft_ms: int | None = None
        prompt_version = ""
        early = self.stored.early
        try:
            request = self._take_request()
            prompt_version = request.prompt.version
            outcome: ChatOutcome | None = None
            stream = early.events() if early is not None else chat_stream(request, tool_runner=self.stored.runner)
            try:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        if ttft_ms is None:
                            ttft_ms = ms_since(started)
                        else:
                            await gate.relay_turn()
                        self.seen.append(event.text)
                        await coalescer.add(event.text)
                    elif isinstance(event, Reset):
                        coalescer.discard()
                        self.seen.clear()
                        await coalescer.run_exclusive(lambda reason=event.reason: self._send_reset(reason))
                    elif isinstance(event, Retrying):  # the customer sees a "retrying" state, not an error
                        retrying = {
                            "type": "retrying",
                            "message_id": reply.pk,
                            "client_id": self.client_id,
                            "budget_seconds": event.budget_seconds,
                        }
                        await coalescer.run_exclusive(lambda frame=retrying: self._send(frame))
                    elif isinstance(event, HistorySummarised):
                        await db(services.conversation_summary_store)(
                            conversation_id=reply.conversation_id,
                            summary=event.summary,
                            turns_covered=event.turns_covered,
                        )
                    elif tool_turns.is_tool_event(event):
                        frame = tool_turns.tool_frame(event, reply_id=reply.pk)
                        await coalescer.run_exclusive(lambda frame=frame: self._send_tool_frame(frame))
                        self._publish_in_order(events.TOOL_FRAME, frame=frame)  # other processes' sockets
                    elif isinstance(event, Finished):
                        outcome = event.outcome
                        self.finishing = True
            finally:
                await aclose_quietly(stream)
            await coalescer.close()
            if outcome is None:
                raise RuntimeError("The gateway stream ended without a Finished event.")
            await self._finish(outcome, started=started, ttft_ms=ttft_ms)
        except asyncio.CancelledError:
            await coalescer.close()
            await db(services.message_reply_finish)(
                reply=reply,
                text="".join(self.seen),
                status=Message.Status.INCOMPLETE,
                prompt_version=prompt_version,
                ttft_ms=ttft_ms,
                latency_ms=ms_since(started),
            )
            if not self.stop_requested:  # shutdown, not the user: stored, now let it propagate
                raise
            CHAT_MESSAGES.labels("stopped").inc()
            await self._end(
                done_frame(reply, status="stopped", client_id=self.client_id, prompt_version=prompt_version)
            )
        except Exception as exc:
            logger.exception("chat answer failed", extra={"message_id": reply.pk})
            CHAT_MESSAGES.labels("failed").inc()
            await coalescer.close()
            await db(services.message_reply_fail)(reply=reply, text="".join(self.seen), latency_ms=ms_since(started))
            error = exc.as_frame() if isinstance(exc, ApplicationError) else dict(GENERATION_FAILED)
            await self._end({**error, "message_id": reply.pk, "client_id": self.client_id})
        finally:
            run_release(self)  # cancelled by a shutdown: the conversation is free anyway
            if self.relay is not None:
                self.relay.flush()  # its last text before `reply_finished`
            await asyncio.wait([self._publish_in_order(events.REPLY_FINISHED, message_id=reply.pk)])

    async def _finish(self, outcome: ChatOutcome, *, started: float, ttft_ms: int | None) -> None:
        """Make the watchers' text equal the outcome's, store it, send the one terminal frame."""
        reply = self.reply
        seen = "".join(self.seen)
        if outcome.text != seen:
            if outcome.text.startswith(seen):
                await self._send_delta(outcome.text[len(seen) :])
            else:
                await self._send_reset("final_text")
                if outcome.text:
                    await self._send_delta(outcome.text)
        latency_ms = ms_since(started)
        CHAT_MESSAGES.labels(outcome.status).inc()
        extra: dict[str, Any] = {}
        if outcome.status == "degraded":
            ticket = await db(services.message_reply_degrade)(
                user=self.user,
                reply=reply,
                text=outcome.text,
                model=outcome.model,
                prompt_version=outcome.prompt_version,
                latency_ms=latency_ms,
            )
            extra["ticket_id"] = ticket.pk
        else:
            await db(services.message_reply_finish)(
                reply=reply,
                text=outcome.text,
                status=outcome.status,
                model=outcome.model,
                prompt_version=outcome.prompt_version,
                ttft_ms=ttft_ms,
                latency_ms=latency_ms,
                citations=outcome.citations,
            )
            if reply.citations:
                extra["sources"] = cited_sources(reply.citations)
        if outcome.error_code:
            extra["error_code"] = outcome.error_code
        await self._end(
            done_frame(
                reply,
                status=outcome.status,
                client_id=self.client_id,
                model=outcome.model,
                prompt_version=outcome.prompt_version,
                **extra,
            )
        )

    async def _end(self, frame: dict[str, Any]) -> None:
        """The answer is stored: free the conversation for its next question, then give every watcher
        its terminal frame. Freed BEFORE the frame goes out, because a client may send its next
        question the moment it sees `done`; under the delta lock, so that a watcher attaching now has
        its catch-up written before the frame."""

        watchers: list[Watcher] = []

        async def release() -> None:
            self.released = True
            run_release(self)
            watchers.extend(self.watchers)

        await self._coalescer.run_exclusive(release)
        await asyncio.gather(*(watcher.watch_terminal(frame) for watcher in watchers), return_exceptions=True)
