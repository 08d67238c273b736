"""The chat websocket: parse frames, call services, stream the gateway's answer (docs/protocol.md).

Tokens are sent by this consumer, which owns the socket, straight from the gateway's async generator;
they never go through the channel layer. The layer carries one control event per finished answer, so a
client that reconnects (possibly to another process) while an answer is still being written gets it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from channels.db import DatabaseSyncToAsync
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.accounts.selectors import session_logs_in
from apps.chat import selectors, services
from apps.chat.models import Conversation, Message
from apps.chat.streaming import DeltaCoalescer, questions_first
from apps.core.exceptions import ApplicationError, RateLimited
from apps.core.logging import conversation_id_var
from apps.core.metrics import CHAT_MESSAGES, WEBSOCKET_CONNECTIONS
from apps.core.ratelimit import rate_limit_hit_async
from apps.llm.clients import request_sent_signal
from apps.llm.gateway import chat_stream
from apps.llm.types import ChatOutcome, ChatRequest, Finished, GatewayEvent, HistorySummarised, Reset, TextDelta

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
FINISHED_EVENT = "chat.reply_finished"
SESSION_ENDED_EVENT = "chat.session_ended"
# How often an open socket checks that its login session is still valid (it expired, or the password
# changed); a logout ends the session's sockets at once (apps.chat.signals).
SESSION_CHECK_SECONDS = 60
# The longest a question's storage waits for its early upstream request to be sent; the request's own
# CPU work is ~1 ms, a connection being opened releases the wait at once, so this only bounds odd cases.
EARLY_SEND_WAIT_SECONDS = 0.02

# asyncio keeps only weak references to tasks: an answer that outlives its socket (the user
# disconnected mid-answer) must stay referenced until it is stored.
_running_answers: set[asyncio.Task[None]] = set()


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


def db(function: Any) -> Any:
    """Run ORM code off the event loop on the shared worker pool, closing stale connections around it.

    Not Channels' default `database_sync_to_async`, which is thread-sensitive: without a per-consumer
    context every consumer's ORM call then queues on ONE thread, and with hundreds of sockets the
    questions wait behind each other (bench/ws_bench.py). Each call here is self-contained (its own
    transaction), so any pool thread may run it.
    """
    return DatabaseSyncToAsync(function, thread_sensitive=False)


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def conversation_group(conversation_id: object) -> str:
    return f"chat.conversation.{conversation_id}"


def session_group(session_key: str) -> str:
    """The sockets opened with one login session: apps.chat.signals ends them at logout."""
    return f"chat.session.{session_key}"


class _EarlyStream:
    """A gateway stream started from a draft request before its question is committed.

    Awaiting the first event in a task of its own sends the upstream request now; `wait_sent()` lets
    the consumer start the question's transaction only once the request is on its way, so the two do
    not compete for the GIL (the emulator or the API then works while the question is stored). The
    consumer then either keeps the stream (the draft equals the request built after the commit) or
    discards it. Its events reach nobody before that decision.
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
class _Answer:
    """One answer being generated by this consumer."""

    submission: services.Submission
    client_id: str | None
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False
    finishing: bool = False  # the gateway finished: a late `stop` no longer changes the outcome
    seen: list[str] = field(default_factory=list)  # text the user saw since the last reset
    # The gateway request built in the same worker-thread call that stored the question, or the error
    # building it raised (re-raised by `take_request`, inside `_generate`'s error handling).
    prepared: ChatRequest | Exception | None = None
    early: _EarlyStream | None = None  # the upstream call started before the commit, when kept

    def take_request(self) -> ChatRequest:
        prepared, self.prepared = self.prepared, None
        if isinstance(prepared, Exception):
            raise prepared
        if prepared is None:
            raise RuntimeError("The answer has no prepared request.")
        return prepared


class ChatConsumer(AsyncWebsocketConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = None
        self.conversation: Conversation | None = None
        self._connected = False
        self._counted = False
        self._answer: _Answer | None = None
        self._awaiting: set[int] = set()  # replies written elsewhere whose result this client waits for
        self._group: str | None = None
        # What the next question's request is drafted from; None while an answer may be changing it.
        self._context: services.ChatContext | None = None
        self._client_ids: set[str] = set()  # questions stored in this conversation that this socket knows of
        self._session_key: str | None = None
        self._session_checked_at = 0.0  # time.monotonic() of the last check that the session is valid
        self._session_ended = False

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        await self.accept()
        self._connected = True
        self._counted = True  # separate from _connected, which a failed send also clears
        WEBSOCKET_CONNECTIONS.inc()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._emit({"type": "error", "code": "unauthenticated", "message": "Log in to chat."})
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self._session_key = getattr(self.scope.get("session"), "session_key", None)
        self._session_checked_at = time.monotonic()  # the auth middleware has just checked it
        if self._session_key and self.channel_layer is not None:
            await self.channel_layer.group_add(session_group(self._session_key), self.channel_name)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        requested = query.get("conversation", [None])[0]
        try:
            conversation, messages, self._context = await _conversation_open(user, requested)
        except ApplicationError as exc:
            await self._emit(exc.as_frame())
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.conversation = conversation
        self._client_ids = {str(m.client_id) for m in messages if m.client_id}
        conversation_id_var.set(str(conversation.id))
        frame: dict[str, Any] = {
            "type": "conversation",
            "id": str(conversation.id),
            "title": conversation.title,
            "status": conversation.status,
        }
        if requested is not None:
            frame["messages"] = [_message_payload(m) for m in messages]
        await self._emit(frame)
        for message in messages:
            if message.status == Message.Status.STREAMING:
                await self._await_reply(message.pk)

    async def disconnect(self, code: int) -> None:
        # An answer in progress keeps running and is stored complete (docs/protocol.md: reconnecting
        # gets the stored result); only sending stops.
        if self._counted:
            WEBSOCKET_CONNECTIONS.dec()
            self._counted = False
        self._connected = False
        if self.channel_layer is not None:
            groups = (self._group, session_group(self._session_key) if self._session_key else None)
            for group in filter(None, groups):
                await self.channel_layer.group_discard(group, self.channel_name)

    # -- client frames ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None or self._session_ended:  # closing after a refused connect or a logout
            return
        frame: Any = None
        try:
            if not await self._session_still_valid():
                await self._end_session("Your session has expired. Log in again; your message was not sent.")
                return
            if await _rate_limited(self.user):
                raise RateLimited(retry_after=60)
            frame = _parse_frame(text_data)
            handler = {"message": self.on_message, "stop": self.on_stop}.get(frame.get("type"))
            if handler is None:
                raise ApplicationError(f"Unknown frame type {frame.get('type')!r}.", code="unknown_type")
            await handler(frame)
        except ApplicationError as exc:
            await self._emit_frame_error(exc.as_frame(), frame)
        except Exception:  # e.g. the database is unreachable: nothing was stored, the client may resend
            logger.exception("could not handle a chat frame")
            await self._emit_frame_error(
                {"type": "error", "code": "server_error", "message": "That did not go through. Please send it again."},
                frame,
            )

    async def _session_still_valid(self) -> bool:
        """Whether the login session this socket was opened with is still valid, checked at most every
        SESSION_CHECK_SECONDS (a worker-thread hop; logouts are announced at once instead)."""
        if not self._session_key or time.monotonic() - self._session_checked_at < SESSION_CHECK_SECONDS:
            return True
        if not await db(session_logs_in)(self._session_key, self.user):
            return False
        self._session_checked_at = time.monotonic()
        return True

    async def chat_session_ended(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for SESSION_ENDED_EVENT: the user logged out (in any tab)."""
        await self._end_session("You were logged out. Log in again to go on chatting.")

    async def _end_session(self, message: str) -> None:
        """Refuse further frames; the client logs in again and resends what was not acknowledged.

        An answer being written goes on and is stored: its question was asked while logged in.
        """
        if self._session_ended:
            return
        self._session_ended = True
        await self._emit({"type": "error", "code": "unauthenticated", "message": message})
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _emit_frame_error(self, error: dict[str, Any], frame: Any) -> None:
        if isinstance(frame, dict) and isinstance(frame.get("client_id"), str):
            error["client_id"] = frame["client_id"]
        await self._emit(error)

    async def on_message(self, frame: dict[str, Any]) -> None:
        text = services.check_message_text(frame.get("text"))
        client_id = services.check_client_id(frame.get("client_id"))
        client_key = str(client_id) if client_id else None
        answer = self._answer
        if answer is not None:
            if client_key is not None and answer.client_id == client_key:  # resend of the one streaming now
                await self._emit(_ack(answer.submission))
                return
            raise ApplicationError("An answer is still being written; wait for it or stop it.", code="busy")
        early = self._start_early(text, client_key)
        try:
            with questions_first().storing():  # answers already streaming let this one start first
                if early is not None:
                    # Let the draft's task send its request first (~1 ms of CPU): started at once, the
                    # worker thread would compete with it for the GIL, delaying the request by as long as
                    # the question takes to store, serialising the two instead of overlapping them.
                    await early.wait_sent(timeout=EARLY_SEND_WAIT_SECONDS)
                submission, prepared = await db(_submit_and_prepare)(
                    user=self.user, conversation=self.conversation, text=text, client_id=client_id, known=self._context
                )
        except BaseException:
            if early is not None:
                await early.discard()
            raise
        await self._emit(_ack(submission))
        if submission.duplicate:
            if early is not None:
                await early.discard()
            if submission.reply is not None:
                await self._await_reply(submission.reply.pk)
            return
        if early is not None:
            if isinstance(prepared, ChatRequest) and early.request.same_call(prepared):
                early.request.reply.message_id = prepared.reply.message_id  # its calls are logged against the reply
            else:  # the context changed since it was loaded (another tab, an account update): start over
                await early.discard()
                early = None
        answer = _Answer(submission=submission, client_id=client_key, prepared=prepared, early=early)
        self._context = None  # this answer changes the history: reloaded when it ends
        if client_key is not None:
            self._client_ids.add(client_key)
        self._answer = answer
        answer.task = asyncio.create_task(self._generate(answer))
        _running_answers.add(answer.task)
        answer.task.add_done_callback(_running_answers.discard)

    def _start_early(self, text: str, client_id: str | None) -> _EarlyStream | None:
        """Start the upstream call from the socket's context, before the question is stored.

        Not for a resend of a question this socket knows is stored (its answer exists), not while an
        answer written elsewhere is awaited (the conversation is busy) and not while the context is
        being reloaded after an answer: those take the ordinary path, starting after the commit.
        """
        if self._context is None or self._awaiting or (client_id is not None and client_id in self._client_ids):
            return None
        return _EarlyStream(self._context.request(text))

    async def on_stop(self, frame: dict[str, Any]) -> None:
        # Stopping when nothing is streaming is a no-op: the answer may have just finished.
        answer = self._answer
        if answer is None or answer.finishing or answer.task is None or answer.task.done():
            return
        answer.stop_requested = True
        answer.task.cancel()

    # -- generation -------------------------------------------------------------------------

    async def _generate(self, answer: _Answer) -> None:
        started = time.monotonic()
        reply = answer.submission.reply
        if reply is None:  # only duplicates lack a reply, and they never start an answer
            raise RuntimeError("An answer needs its assistant row.")
        coalescer = DeltaCoalescer(self._emit_delta)
        gate = questions_first()
        ttft_ms: int | None = None
        prompt_version = ""
        try:
            request = answer.take_request()
            prompt_version = request.prompt.version
            outcome: ChatOutcome | None = None
            stream = answer.early.events() if answer.early is not None else chat_stream(request)
            try:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        if ttft_ms is None:
                            ttft_ms = _ms_since(started)
                        else:
                            await gate.relay_turn()
                        answer.seen.append(event.text)
                        await coalescer.add(event.text)
                    elif isinstance(event, Reset):
                        coalescer.discard()
                        answer.seen.clear()
                        reset = {"type": "reset", "reason": event.reason}
                        await coalescer.run_exclusive(lambda frame=reset: self._emit(frame))
                    elif isinstance(event, HistorySummarised):
                        await db(services.conversation_summary_store)(
                            conversation_id=reply.conversation_id,
                            summary=event.summary,
                            turns_covered=event.turns_covered,
                        )
                    elif isinstance(event, Finished):
                        outcome = event.outcome
                        answer.finishing = True
            finally:
                await _aclose_quietly(stream)
            await coalescer.close()
            if outcome is None:
                raise RuntimeError("The gateway stream ended without a Finished event.")
            await self._finish(answer, outcome, started=started, ttft_ms=ttft_ms)
        except asyncio.CancelledError:
            await coalescer.close()
            await db(services.message_reply_finish)(
                reply=reply,
                text="".join(answer.seen),
                status=Message.Status.INCOMPLETE,
                prompt_version=prompt_version,
                ttft_ms=ttft_ms,
                latency_ms=_ms_since(started),
            )
            if not answer.stop_requested:  # shutdown, not the user: stored, now let it propagate
                raise
            await self._release(answer)
            CHAT_MESSAGES.labels("stopped").inc()
            await self._emit(_done(reply, status="stopped", client_id=answer.client_id, prompt_version=prompt_version))
        except Exception as exc:
            logger.exception("chat answer failed", extra={"message_id": reply.pk})
            CHAT_MESSAGES.labels("failed").inc()
            await coalescer.close()
            await db(services.message_reply_fail)(reply=reply, text="".join(answer.seen), latency_ms=_ms_since(started))
            error = (
                exc.as_frame()
                if isinstance(exc, ApplicationError)
                else {
                    "type": "error",
                    "code": "generation_failed",
                    "message": "The assistant could not answer. Please try again.",
                }
            )
            await self._release(answer)
            await self._emit({**error, "message_id": reply.pk, "client_id": answer.client_id})
        finally:
            if self._answer is answer:  # cancelled by a shutdown: no next question here
                self._answer = None
            await self._announce_finished(reply)

    async def _finish(self, answer: _Answer, outcome: ChatOutcome, *, started: float, ttft_ms: int | None) -> None:
        """Make the client's text equal the outcome's, store it, send the one terminal frame."""
        reply = answer.submission.reply
        seen = "".join(answer.seen)
        if outcome.text != seen:
            if outcome.text.startswith(seen):
                await self._emit_delta(outcome.text[len(seen) :])
            else:
                await self._emit({"type": "reset", "reason": "final_text"})
                if outcome.text:
                    await self._emit_delta(outcome.text)
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
            )
        if outcome.error_code:
            extra["error_code"] = outcome.error_code
        await self._release(answer)
        await self._emit(
            _done(
                reply,
                status=outcome.status,
                client_id=answer.client_id,
                model=outcome.model,
                prompt_version=outcome.prompt_version,
                **extra,
            )
        )

    async def _release(self, answer: _Answer) -> None:
        """The answer is stored: accept the next question, drafted from a context that includes this
        answer. Called BEFORE sending the terminal frame, because a client may send its next message
        the moment it sees `done`."""
        if self._answer is answer:
            self._answer = None
            await self._reload_context()

    async def _reload_context(self) -> None:
        """Read what the next question will be built from (this answer changed the history)."""
        if not self._connected:  # no next question on this socket
            return
        try:
            context = await db(services.chat_context_load)(user=self.user, conversation=self.conversation)
        except Exception:  # the next question takes the ordinary path
            logger.warning("could not load the chat context", exc_info=True)
            return
        if self._answer is None:  # a question sent meanwhile has started without it
            self._context = context

    # -- answers written elsewhere (reconnect, resend) ---------------------------------------

    async def _await_reply(self, reply_id: int) -> None:
        """Send the stored result of `reply_id` now if it is finished, else when its writer announces it."""
        if self._group is None and self.channel_layer is not None:
            # Join before reading, so a finish between the read and the join cannot be missed.
            self._group = conversation_group(self.conversation.id)
            await self.channel_layer.group_add(self._group, self.channel_name)
        self._awaiting.add(reply_id)
        await self._send_stored_if_finished(reply_id)

    async def chat_reply_finished(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for FINISHED_EVENT."""
        if event.get("message_id") in self._awaiting:
            await self._send_stored_if_finished(event["message_id"])

    async def _send_stored_if_finished(self, reply_id: int) -> None:
        stored = await db(_stored_reply)(reply_id)
        if stored is None or reply_id not in self._awaiting:
            return
        reply, ticket_id = stored
        self._awaiting.discard(reply_id)
        client_id = str(reply.reply_to.client_id) if reply.reply_to and reply.reply_to.client_id else None
        if not self._awaiting and self._answer is None:
            await self._reload_context()  # that answer changed the history
        if reply.status == Message.Status.FAILED:
            await self._emit(
                {
                    "type": "error",
                    "code": "generation_failed",
                    "message": "The assistant could not answer. Please try again.",
                    "message_id": reply.pk,
                    "client_id": client_id,
                }
            )
            return
        if reply.text:
            await self._emit_delta(reply.text)
        extra = {"ticket_id": ticket_id} if ticket_id else {}
        await self._emit(
            _done(
                reply,
                status=reply.status,
                client_id=client_id,
                model=reply.model,
                prompt_version=reply.prompt_version,
                **extra,
            )
        )

    async def _announce_finished(self, reply: Message) -> None:
        if self.channel_layer is None:
            return
        try:
            await self.channel_layer.group_send(
                conversation_group(reply.conversation_id), {"type": FINISHED_EVENT, "message_id": reply.pk}
            )
        except Exception:  # the answer is stored; a waiting client can reload it
            logger.warning("could not announce a finished answer", exc_info=True)

    # -- sending ----------------------------------------------------------------------------

    async def _emit_delta(self, text: str) -> None:
        await self._emit({"type": "delta", "text": text})

    async def _emit(self, frame: dict[str, Any]) -> None:
        if not self._connected:
            return
        try:
            await self.send(text_data=_dumps(frame))
        except Exception:  # the client went away; the answer is still stored
            self._connected = False


# -- helpers (no socket state) -----------------------------------------------------------------


def _parse_frame(text_data: str | None) -> dict[str, Any]:
    if text_data is None:
        raise ApplicationError("Frames must be JSON text.", code="malformed")
    try:
        frame = json.loads(text_data)
    except ValueError as exc:
        raise ApplicationError("The frame is not valid JSON.", code="malformed") from exc
    if not isinstance(frame, dict):
        raise ApplicationError("A frame must be a JSON object.", code="malformed")
    return frame


async def _rate_limited(user: Any) -> bool:
    return await rate_limit_hit_async(key=f"chat:user:{user.pk}", limit=settings.CHAT_RATE_LIMIT_PER_MINUTE)


async def _aclose_quietly(stream: Any) -> None:
    try:
        await stream.aclose()
    except (RuntimeError, StopAsyncIteration):
        pass


def _conversation_open_sync(
    user: Any, requested: str | None
) -> tuple[Conversation, list[Message], services.ChatContext | None]:
    """The requested conversation (the user's own only) with its transcript, or a fresh one, and the
    context its next question will be built from."""
    if requested is None:
        conversation, messages = services.conversation_start(user=user), []
    else:
        conversation = selectors.conversation_get_for_user(user, requested)
        messages = list(selectors.conversation_messages(conversation))
        for message in messages:
            if selectors.message_streaming_is_stale(message):
                services.message_reply_fail(reply=message, text=message.text)
    return conversation, messages, services.chat_context_load(user=user, conversation=conversation)


def _submit_and_prepare(
    *, user: Any, conversation: Conversation, text: str, client_id: Any, known: services.ChatContext | None
) -> tuple[services.Submission, ChatRequest | Exception | None]:
    """Store the question and build its gateway request in ONE worker-thread call.

    Under load every hop to the thread pool queues behind other sockets' ORM work; the question's
    storage and the request's reads (version, account, history) used to be two hops before the first
    token. A failure building the request is returned, not raised: the question is stored and acked
    first, then `_generate` raises it and ends the answer exactly as before.
    """
    submission = services.message_submit(conversation=conversation, text=text, client_id=client_id)
    if submission.duplicate:
        return submission, None
    try:
        return submission, services.message_reply_request(user=user, submission=submission, known=known)
    except Exception as exc:  # handed to _generate, which reports and stores it
        return submission, exc


async def _conversation_open(
    user: Any, requested: str | None
) -> tuple[Conversation, list[Message], services.ChatContext | None]:
    return await db(_conversation_open_sync)(user, requested)


def _stored_reply(reply_id: int) -> tuple[Message, int | None] | None:
    """A finished reply (and its ticket id when degraded); None while it is still streaming."""
    reply = Message.objects.select_related("reply_to").filter(pk=reply_id).first()
    if reply is None:
        return None
    if selectors.message_streaming_is_stale(reply):
        services.message_reply_fail(reply=reply, text=reply.text)
    if not reply.is_terminal:
        return None
    ticket_id = selectors.conversation_ticket_id(reply.conversation_id) if reply.status == "degraded" else None
    return reply, ticket_id


def _message_payload(message: Message) -> dict[str, Any]:
    feedback = getattr(message, "feedback", None) if message.role == Message.Role.ASSISTANT else None
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "client_id": str(message.client_id) if message.client_id else None,
        "model": message.model,
        "prompt_version": message.prompt_version,
        "created_at": message.created_at.isoformat(),
        "feedback": feedback.rating if feedback else None,
    }


def _ack(submission: services.Submission) -> dict[str, Any]:
    question = submission.question
    return {
        "type": "ack",
        "client_id": str(question.client_id) if question.client_id else None,
        "message_id": question.pk,
        "reply_id": submission.reply.pk if submission.reply else None,
        "duplicate": submission.duplicate,
    }


def _done(
    reply: Message, *, status: str, client_id: str | None, model: str = "", prompt_version: str = "", **extra: Any
) -> dict[str, Any]:
    return {
        "type": "done",
        "message_id": reply.pk,
        "client_id": client_id,
        "model": model,
        "prompt_version": prompt_version,
        "status": status,
        **extra,
    }
