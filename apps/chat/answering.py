"""An answer's start and stop, independent of the socket that asked.

A question is stored (`question_store`), the socket acknowledges it, and `answer_start` runs its answer
as an `AnswerRun` (apps/chat/answer_run.py) sent to every socket watching the conversation in this
process (apps/chat/watchers.py). Sockets of other processes learn of the answer's start and end
through control events (apps/chat/events.py), get its text while they ask for it (apps/chat/relay.py)
and end with the stored result; a stop reaches whichever process writes the answer.

The public entry points of the answer's life are re-exported here, so sockets import one module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from apps.chat import events, relay, services, tool_turns
from apps.chat.answer_run import AnswerRun
from apps.chat.loop import aclose_quietly, db, dumps, keep_running, running_answers_drain
from apps.chat.models import Conversation
from apps.chat.streaming import questions_first
from apps.chat.watchers import Watcher, conversation_unwatch, conversation_watch, hub_for, running_answer
from apps.llm.clients import request_sent_signal
from apps.llm.gateway import chat_stream
from apps.llm.tools import ToolRunner
from apps.llm.types import ChatRequest, GatewayEvent

__all__ = [
    "AnswerRun",
    "StoredQuestion",
    "Watcher",
    "answer_start",
    "answer_stop",
    "answer_stop_local",
    "conversation_unwatch",
    "conversation_watch",
    "db",
    "dumps",
    "question_busy",
    "question_store",
    "running_answer",
    "running_answers_drain",
]

# The longest a question's storage waits for its early upstream request to be sent; the request's own
# CPU work is ~1 ms, a connection being opened releases the wait at once, so this only bounds odd cases.
EARLY_SEND_WAIT_SECONDS = 0.02


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
        await aclose_quietly(self._events)


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
    answerer: str = "",
) -> StoredQuestion:
    """Store the question (and its streaming reply row) and build its gateway request.

    `draft_from`: a context read earlier; the upstream call then starts from it before the commit, and
    is kept only if the request built after the commit is the same call. Raises what
    `services.message_submit` raises (`busy`, database errors): then nothing was stored and no call
    goes on. `language`: an anonymous visitor's browser language (`services.chat_context_load`);
    `answerer`: as for `services.message_submit`.
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
                answerer=answerer,
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
    relay.relay_listen(_text_wanted)  # once per process: sockets elsewhere may ask for this answer's text
    hub = hub_for(reply.conversation_id)
    run = AnswerRun(stored=stored, user=user, client_id=client_id, watchers=set(hub.watchers) | {origin})
    hub.run = run
    run.announce(exclude=origin)
    run.task = asyncio.create_task(run.generate())
    keep_running(run.task)
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


# -- helpers --------------------------------------------------------------------------------------


def _text_wanted(event: dict[str, Any]) -> None:
    """A socket of another process asks for an answer's text: forward it if this process writes it."""
    run = running_answer(event.get("conversation_id"))
    if run is not None and run.reply.pk == event.get("message_id"):
        run.text_wanted(fresh=bool(event.get("fresh")))


def _submit_and_prepare(
    *,
    user: Any,
    conversation: Conversation,
    text: str,
    client_id: Any,
    known: services.ChatContext | None,
    language: str = "",
    answerer: str = "",
) -> tuple[services.Submission, ChatRequest | Exception | None, ToolRunner | None]:
    """Store the question and build its gateway request in ONE worker-thread call.

    Under load every hop to the thread pool queues behind other sockets' ORM work; the question's
    storage and the request's reads (version, account, history) used to be two hops before the first
    token. A failure building the request is returned, not raised: the question is stored and acked
    first, then the run raises it and ends the answer exactly as before. With tools, the runner of
    their calls is built here too, scoped to `user`'s own account.
    """
    submission = services.message_submit(conversation=conversation, text=text, client_id=client_id, answerer=answerer)
    if submission.duplicate or submission.reply is None:  # a resend, or a question for a person
        return submission, None, None
    try:
        request = services.message_reply_request(user=user, submission=submission, known=known, language=language)
        request, runner = tool_turns.tools_scoped(user, request)
        return submission, request, runner
    except Exception as exc:  # handed to the run, which reports and stores it
        return submission, exc, None
