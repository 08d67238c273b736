"""An answer's life — start, stream, stop, finish, store — independent of the socket that asked.

One `AnswerRun` per conversation at a time, in the process that stored the question. Every socket of
this process watching the conversation (the customer's tabs, a page reloaded mid-answer, an agent) is
a `Watcher` of it: it gets the text so far when it starts watching, then the same frames as everyone
else, and exactly one terminal frame. Frames are encoded once and written to each watcher in order;
tokens never go through the channel layer (docs/protocol.md, "One stream, many watchers"). Sockets of
other processes learn of the answer's start and end through control events (apps/chat/events.py)
and read the stored result.

Guarantees kept from the single-socket design: the question is stored (and acknowledged by the
caller) before any of its text is sent; the text every watcher shows — deltas since the last reset —
is what is stored; a retry or a fallback sends `reset`; a stop (from any watcher allowed to) stores
the text so far as `incomplete`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.db import DatabaseSyncToAsync
from django.contrib.auth.models import AbstractBaseUser

from apps.chat import events, services, tool_turns
from apps.chat.models import Conversation, Message
from apps.chat.payloads import cited_sources, message_payload
from apps.chat.replies import GENERATION_FAILED, done_frame
from apps.chat.streaming import DeltaCoalescer, questions_first
from apps.core.exceptions import ApplicationError
from apps.core.metrics import CHAT_MESSAGES
from apps.llm.clients import request_sent_signal
from apps.llm.gateway import chat_stream
from apps.llm.tools import ToolRunner
from apps.llm.types import (
    ChatOutcome,
    ChatRequest,
    Finished,
    GatewayEvent,
    HistorySummarised,
    Reset,
    Retrying,
    TextDelta,
)

logger = logging.getLogger(__name__)

# The longest a question's storage waits for its early upstream request to be sent; the request's own
# CPU work is ~1 ms, a connection being opened releases the wait at once, so this only bounds odd cases.
EARLY_SEND_WAIT_SECONDS = 0.02


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


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class Watcher(Protocol):
    """A socket watching a conversation. Both methods must not raise (a gone client is ignored)."""

    async def watch_send(self, encoded: str) -> None:
        """Write one frame, already JSON-encoded; called in the order the frames must arrive."""

    async def watch_terminal(self, frame: dict[str, Any]) -> None:
        """The answer's one terminal frame (`done` or `error`); the conversation takes questions again."""


# -- the runs of this process ---------------------------------------------------------------------

# asyncio keeps only weak references to tasks: an answer that outlives every socket watching it must
# stay referenced until it is stored.
_running_answers: set[asyncio.Task[None]] = set()


@dataclass
class _Hub:
    """The watchers of one conversation in this process, and its answer being written here (if any)."""

    watchers: set[Watcher] = field(default_factory=set)
    run: AnswerRun | None = None


_hubs: dict[str, _Hub] = {}


def _hub(conversation_id: object) -> _Hub:
    key = str(conversation_id)
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = _Hub()
    return hub


def _hub_prune(conversation_id: object) -> None:
    key = str(conversation_id)
    hub = _hubs.get(key)
    if hub is not None and not hub.watchers and hub.run is None:
        del _hubs[key]


def running_answer(conversation_id: object) -> AnswerRun | None:
    """The answer being written in this process for the conversation, if any."""
    hub = _hubs.get(str(conversation_id))
    return hub.run if hub is not None else None


async def conversation_watch(conversation_id: object, watcher: Watcher, *, known_reply_ids: set[int]) -> int | None:
    """Start sending the conversation's answers to `watcher`.

    If an answer is being written here now, the watcher first gets what it lacks of it — the
    `answer_started` frame unless the reply is in `known_reply_ids` (it had the transcript with it),
    then the text so far as one `delta` — and then the live frames and the terminal one. Returns that
    reply's id (its result reaches the watcher from here), else None.
    """
    hub = _hub(conversation_id)
    hub.watchers.add(watcher)
    run = hub.run
    if run is None:
        return None
    return await run.attach(watcher, knows_reply=run.reply.pk in known_reply_ids)


def conversation_unwatch(conversation_id: object, watcher: Watcher) -> None:
    """Stop sending to `watcher` (it disconnected). An answer being written goes on and is stored."""
    hub = _hubs.get(str(conversation_id))
    if hub is None:
        return
    hub.watchers.discard(watcher)
    if hub.run is not None:
        hub.run.watchers.discard(watcher)
    _hub_prune(conversation_id)


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


# -- start ----------------------------------------------------------------------------------------


class _EarlyStream:
    """A gateway stream started from a draft request before its question is committed.

    Awaiting the first event in a task of its own sends the upstream request now; `wait_sent()` lets
    the question's transaction start only once the request is on its way, so the two do not compete
    for the GIL (the emulator or the API then works while the question is stored). The draft is then
    either kept (it equals the request built after the commit) or discarded. Its events reach nobody
    before that decision.
    """

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self._sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._events = chat_stream(request)
        with request_sent_signal(self._sent):  # the task below inherits it
            self._first: asyncio.Future[GatewayEvent] = asyncio.ensure_future(anext(self._events))
        self._first.add_done_callback(self._mark_sent)  # no request at all (an open circuit, an error)

    def _mark_sent(self, _: object) -> None:
        if not self._sent.done():
            self._sent.set_result(None)

    async def wait_sent(self, timeout: float) -> None:
        """Until the request has left (or the connection is being opened, or it failed); at most `timeout`."""
        await asyncio.wait([self._sent], timeout=timeout)

    async def events(self) -> AsyncIterator[GatewayEvent]:
        try:
            try:
                first = await self._first
            except StopAsyncIteration:
                return
            yield first
            async for event in self._events:
                yield event
        finally:
            await self.discard()

    async def discard(self) -> None:
        """Stop the stream (its upstream call is logged as cancelled, like a user's stop)."""
        if not self._first.done():
            self._first.cancel()
        await asyncio.wait([self._first])  # unlike `await`, never raises (nor swallows our own cancellation)
        if not self._first.cancelled():
            self._first.exception()  # retrieved: an error of a discarded draft is not "never retrieved"
        await _aclose_quietly(self._events)


@dataclass
class StoredQuestion:
    """A question stored by `question_store`, with what its answer starts from."""

    submission: services.Submission
    # The gateway request built in the same worker-thread call that stored the question, or the error
    # building it raised (re-raised inside the run's error handling, after the question was acked).
    prepared: ChatRequest | Exception | None
    early: _EarlyStream | None  # the upstream call started before the commit, when kept
    runner: ToolRunner | None = None  # runs the model's tool calls for the customer's own account


def question_busy(conversation_id: object, client_id: str | None) -> bool:
    """Whether a question must be refused as `busy` without a database hop: an answer is being written
    here for another question. (Another process's answer is caught by `services.message_submit`.)

    Returns False for a resend of the question being answered: it is stored again as a duplicate.
    """
    run = running_answer(conversation_id)
    return run is not None and (client_id is None or run.client_id != client_id)


async def question_store(
    *,
    user: AbstractBaseUser,
    conversation: Conversation,
    text: str,
    client_id: Any,
    draft_from: services.ChatContext | None,
    language: str = "",
) -> StoredQuestion:
    """Store the question (and its streaming reply row) and build its gateway request.

    `draft_from`: a context read earlier; the upstream call then starts from it before the commit, and
    is kept only if the request built after the commit is the same call. Raises what
    `services.message_submit` raises (`busy`, database errors): then nothing was stored and no call
    goes on. `language`: an anonymous visitor's browser language (`services.chat_context_load`).
    """
    # A request with tools needs its reply row for the calls' scope: it starts after the commit.
    drafting = draft_from is not None and not draft_from.prompt.tool_names
    early = _EarlyStream(draft_from.request(text)) if drafting and draft_from is not None else None
    try:
        with questions_first().storing():  # answers already streaming let this one start first
            if early is not None:
                # Let the draft's task send its request first (~1 ms of CPU): started at once, the
                # worker thread would compete with it for the GIL, delaying the request by as long as
                # the question takes to store, serialising the two instead of overlapping them.
                await early.wait_sent(timeout=EARLY_SEND_WAIT_SECONDS)
            submission, prepared, runner = await db(_submit_and_prepare)(
                user=user,
                conversation=conversation,
                text=text,
                client_id=client_id,
                known=draft_from,
                language=language,
            )
    except BaseException:
        if early is not None:
            await early.discard()
        raise
    if early is not None:
        if not submission.duplicate and isinstance(prepared, ChatRequest) and early.request.same_call(prepared):
            early.request.reply.message_id = prepared.reply.message_id  # its calls are logged against the reply
        else:  # a resend, or the context changed since it was loaded (another tab, an account update)
            await early.discard()
            early = None
    return StoredQuestion(submission=submission, prepared=prepared, early=early, runner=runner)


def answer_start(
    stored: StoredQuestion, *, user: AbstractBaseUser, client_id: str | None, origin: Watcher
) -> AnswerRun:
    """Start writing the answer to a stored (and acknowledged) question.

    `origin` is the socket that asked (it had the `ack`); every other watcher of the conversation gets
    `answer_started` first. Returns the run; the caller does not wait for it.
    """
    reply = stored.submission.reply
    if stored.submission.duplicate or reply is None:
        raise RuntimeError("Only a new question starts an answer.")
    hub = _hub(reply.conversation_id)
    run = AnswerRun(stored=stored, user=user, client_id=client_id, watchers=set(hub.watchers) | {origin})
    hub.run = run
    run.announce(exclude=origin)
    run.task = asyncio.create_task(run.generate())
    _running_answers.add(run.task)
    run.task.add_done_callback(_running_answers.discard)
    return run


# -- stop -----------------------------------------------------------------------------------------


def answer_stop_local(conversation_id: object) -> bool:
    """Stop the answer being written here for the conversation. False if there is none (it may have just
    finished, or runs in another process). The caller authorised the stop."""
    run = running_answer(conversation_id)
    if run is None:
        return False
    run.stop()
    return True


async def answer_stop(conversation_id: object) -> None:
    """Stop the conversation's answer wherever it is being written (a no-op when none is)."""
    if not answer_stop_local(conversation_id):
        await events.publish(conversation_id, events.ANSWER_STOP)


# -- the run --------------------------------------------------------------------------------------


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
            self._background(self._coalescer.run_exclusive(lambda: self._send_to(others, encoded)))
        self._background(
            events.publish(
                self.conversation_id,
                events.ANSWER_STARTED,
                message_id=self.reply.pk,
                question=message_payload(self.stored.submission.question),
            )
        )

    async def attach(self, watcher: Watcher, *, knows_reply: bool) -> int:
        """Send a new watcher what it missed, then make it one of the run's watchers (in that order,
        under the lock that orders deltas, so it misses and repeats nothing)."""

        async def catch_up() -> None:
            if watcher in self.watchers:
                return
            if not knows_reply:
                await watcher.watch_send(dumps(self._started_frame()))
            if self.sent:
                await watcher.watch_send(dumps({"type": "delta", "text": "".join(self.sent)}))
            self.watchers.add(watcher)

        await self._coalescer.run_exclusive(catch_up)
        return self.reply.pk

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

    async def _send_delta(self, text: str) -> None:
        self.sent.append(text)
        await self._send_to(self.watchers, dumps({"type": "delta", "text": text}))

    def _background(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        _running_answers.add(task)
        task.add_done_callback(_running_answers.discard)

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
                            ttft_ms = _ms_since(started)
                        else:
                            await gate.relay_turn()
                        self.seen.append(event.text)
                        await coalescer.add(event.text)
                    elif isinstance(event, Reset):
                        coalescer.discard()
                        self.seen.clear()
                        reset = {"type": "reset", "reason": event.reason}

                        async def send_reset(frame: dict[str, Any] = reset) -> None:
                            self.sent.clear()
                            await self._send(frame)

                        await coalescer.run_exclusive(send_reset)
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
                        await coalescer.run_exclusive(lambda frame=frame: self._send(frame))
                    elif isinstance(event, Finished):
                        outcome = event.outcome
                        self.finishing = True
            finally:
                await _aclose_quietly(stream)
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
                latency_ms=_ms_since(started),
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
            await db(services.message_reply_fail)(reply=reply, text="".join(self.seen), latency_ms=_ms_since(started))
            error = exc.as_frame() if isinstance(exc, ApplicationError) else dict(GENERATION_FAILED)
            await self._end({**error, "message_id": reply.pk, "client_id": self.client_id})
        finally:
            self._release()  # cancelled by a shutdown: the conversation is free anyway
            await events.publish(reply.conversation_id, events.REPLY_FINISHED, message_id=reply.pk)

    async def _finish(self, outcome: ChatOutcome, *, started: float, ttft_ms: int | None) -> None:
        """Make the watchers' text equal the outcome's, store it, send the one terminal frame."""
        reply = self.reply
        seen = "".join(self.seen)
        if outcome.text != seen:
            if outcome.text.startswith(seen):
                await self._send_delta(outcome.text[len(seen) :])
            else:
                self.sent.clear()
                await self._send({"type": "reset", "reason": "final_text"})
                if outcome.text:
                    await self._send_delta(outcome.text)
        latency_ms = _ms_since(started)
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

    def _release(self) -> None:
        hub = _hubs.get(str(self.conversation_id))
        if hub is not None and hub.run is self:
            hub.run = None
            _hub_prune(self.conversation_id)

    async def _end(self, frame: dict[str, Any]) -> None:
        """The answer is stored: free the conversation for its next question, then give every watcher
        its terminal frame. Freed BEFORE the frame goes out, because a client may send its next
        question the moment it sees `done`; under the delta lock, so that a watcher attaching now has
        its catch-up written before the frame."""

        watchers: list[Watcher] = []

        async def release() -> None:
            self._release()
            watchers.extend(self.watchers)

        await self._coalescer.run_exclusive(release)
        await asyncio.gather(*(watcher.watch_terminal(frame) for watcher in watchers), return_exceptions=True)


# -- helpers --------------------------------------------------------------------------------------


async def _aclose_quietly(stream: Any) -> None:
    try:
        await stream.aclose()
    except (RuntimeError, StopAsyncIteration):
        pass


def _submit_and_prepare(
    *,
    user: Any,
    conversation: Conversation,
    text: str,
    client_id: Any,
    known: services.ChatContext | None,
    language: str = "",
) -> tuple[services.Submission, ChatRequest | Exception | None, ToolRunner | None]:
    """Store the question and build its gateway request in ONE worker-thread call.

    Under load every hop to the thread pool queues behind other sockets' ORM work; the question's
    storage and the request's reads (version, account, history) used to be two hops before the first
    token. A failure building the request is returned, not raised: the question is stored and acked
    first, then the run raises it and ends the answer exactly as before. With tools, the runner of
    their calls is built here too, scoped to `user`'s own account.
    """
    submission = services.message_submit(conversation=conversation, text=text, client_id=client_id)
    if submission.duplicate or submission.reply is None:  # a resend, or a question for a person
        return submission, None, None
    try:
        request = services.message_reply_request(user=user, submission=submission, known=known, language=language)
        request, runner = tool_turns.tools_scoped(user, request)
        return submission, request, runner
    except Exception as exc:  # handed to the run, which reports and stores it
        return submission, exc, None
