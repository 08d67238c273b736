"""The chat websocket: transport only — parse frames, authorise, subscribe, send (docs/protocol.md).

An answer's life (start, stream, stop, finish, store) is apps/chat/answering.py; this consumer asks it
to store a question and start the answer, and is one of the answer's watchers, like every other
socket watching the conversation. Control events of other processes arrive through the channel
layer (apps/chat/events.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.accounts.selectors import session_logs_in
from apps.chat import answering, events, frames, handoffs, payloads, relay, replies, selectors, services, tool_turns
from apps.chat.answering import db, dumps
from apps.chat.models import Conversation, Message
from apps.core.exceptions import ApplicationError, RateLimited
from apps.core.logging import conversation_id_var
from apps.core.metrics import WEBSOCKET_CONNECTIONS
from apps.core.ratelimit import rate_limit_hit_async

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# Kept for the importers of the former names.
SESSION_ENDED_EVENT = events.SESSION_ENDED
session_group = events.session_group
conversation_group = events.conversation_group
# How often an open socket checks that its login session is still valid (it expired, or the password
# changed); a logout ends the session's sockets at once (apps.chat.signals).
SESSION_CHECK_SECONDS = 60


class ChatConsumer(AsyncWebsocketConsumer):
    """A customer's socket on one of their conversations; a watcher of that conversation's answers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = None
        self.conversation: Conversation | None = None
        self._connected = False
        self._counted = False
        self._watching = False
        self._awaiting: set[int] = set()  # replies written by another process whose result this client waits for
        # What this socket showed of each of those (their text arrives while it asks: apps/chat/relay.py).
        self._remote: dict[int, relay.RemoteText] = {}
        self._wanting: asyncio.Task[None] | None = None  # repeats the requests for their text
        # What the next question's request is drafted from; None while an answer may be changing it.
        self._context: services.ChatContext | None = None
        self._client_ids: set[str] = set()  # questions stored in this conversation that this socket knows of
        # Ids of the newest messages of the transcript sent at connect: their live copy, published while
        # the socket was connecting, is not sent again.
        self._transcript_ids: frozenset[int] = frozenset()
        self._session_key: str | None = None
        self._session_checked_at = 0.0  # time.monotonic() of the last check that the session is valid
        self._session_ended = False
        # A person answers this conversation (as last heard): no upstream call is drafted for a question.
        self._humans_answer = False
        # An anonymous visitor's browser language, set by the widget's consumer before connecting; a
        # customer's language is their account's.
        self.language = ""

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
            await self.channel_layer.group_add(events.session_group(self._session_key), self.channel_name)
        requested = self.requested_conversation()
        # A resumed conversation's group is joined before its transcript is read: a message stored in
        # between (an agent's reply, a question from another tab) is then in the transcript or arrives
        # after the `conversation` frame, never neither. Events reaching the channel meanwhile wait
        # until connect() returns (a consumer handles one message at a time); `dispatch` drops them
        # if the conversation is refused, `chat_message_added` those the transcript already shows.
        early_group = _group_to_resume(requested) if self.channel_layer is not None else None
        if early_group is not None:
            await self.channel_layer.group_add(early_group, self.channel_name)
        try:
            conversation, messages, self._context = await _conversation_open(user, requested, self.language)
        except ApplicationError as exc:
            if early_group is not None:
                await self.channel_layer.group_discard(early_group, self.channel_name)
            await self._emit(exc.as_frame())
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.conversation = conversation
        self._humans_answer = conversation.humans_answer
        self._client_ids = {str(m.client_id) for m in messages if m.client_id}
        self._transcript_ids = _newest_ids(messages)
        conversation_id_var.set(str(conversation.id))
        # Subscribed before the stored results below are read, so a finish in between is not missed. An
        # answer started here after the transcript was read reaches this socket as `answer_started`
        # (conversation_watch); one started by another process in the instant before this line is
        # seen at its end, or on the next reload.
        if self.channel_layer is not None and early_group != events.conversation_group(conversation.id):
            await self.channel_layer.group_add(events.conversation_group(conversation.id), self.channel_name)
        frame: dict[str, Any] = {
            "type": "conversation",
            "id": str(conversation.id),
            "title": conversation.title,
            "status": conversation.status,
            "agent": payloads.agent_name(conversation.assigned_agent) if conversation.assigned_agent_id else None,
            "humans_answer": conversation.humans_answer,
            "offer_choice": selectors.conversation_offers_choice(conversation, has_messages=bool(messages)),
        }
        if requested is not None:
            frame["messages"] = [tool_turns.payload_with_actions(m) for m in messages]
        await self._emit(frame)
        if requested is not None and _agent_message_unseen(conversation, messages):
            await self._seen_by_customer()
        streaming = {m.pk for m in messages if m.status == Message.Status.STREAMING}
        self._watching = True
        local = await answering.conversation_watch(conversation.id, self, known_reply_ids=streaming)
        for reply_id in streaming - {local}:  # written by another process (or just finished here)
            await self._await_reply(reply_id)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Subscribed to a resumed conversation before it was authorised (connect): a refused socket gets
        # none of its events.
        if self.conversation is None and message["type"].startswith("chat."):
            return
        await super().dispatch(message)

    def requested_conversation(self) -> str | None:
        """The id of the conversation the client resumes (`?conversation=`); None starts a new one."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return query.get("conversation", [None])[0]

    async def disconnect(self, code: int) -> None:
        # An answer in progress keeps running and is stored complete (docs/protocol.md: reconnecting
        # gets the stored result); only sending to this socket stops.
        if self._counted:
            WEBSOCKET_CONNECTIONS.dec()
            self._counted = False
        self._connected = False
        if self._wanting is not None:
            self._wanting.cancel()
        if self._watching and self.conversation is not None:
            answering.conversation_unwatch(self.conversation.id, self)
            self._watching = False
        if self.channel_layer is not None:
            groups = (
                events.conversation_group(self.conversation.id) if self.conversation is not None else None,
                events.session_group(self._session_key) if self._session_key else None,
            )
            for group in filter(None, groups):
                await self.channel_layer.group_discard(group, self.channel_name)

    # -- client frames ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None or self._session_ended:  # closing after a refused connect or a logout
            return
        frame: frames.Frame | None = None
        try:
            if not await self._session_still_valid():
                await self._end_session("Your session has expired. Log in again; your message was not sent.")
                return
            if await _rate_limited(self.user):
                raise RateLimited(retry_after=60)
            frame = frames.frame_parse(text_data)
            if isinstance(frame, frames.MessageFrame):
                await self.on_message(frame)
            elif isinstance(frame, frames.DecisionFrame):
                await self.on_decision(frame)
            else:
                await self.on_stop(frame)
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
        """Channel-layer handler for events.SESSION_ENDED: the user logged out (in any tab)."""
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

    async def _emit_frame_error(self, error: dict[str, Any], frame: frames.Frame | None) -> None:
        if isinstance(frame, frames.MessageFrame) and frame.client_id_sent is not None:
            error["client_id"] = frame.client_id_sent
        await self._emit(error)

    async def on_message(self, frame: frames.MessageFrame) -> None:
        text, client_id = frame.text, frame.client_id
        client_key = str(client_id) if client_id else None
        conversation_id = self.conversation.id
        if answering.question_busy(conversation_id, client_key):
            raise ApplicationError("An answer is still being written; wait for it or stop it.", code="busy")
        stored = await answering.question_store(
            user=self.user,
            conversation=self.conversation,
            text=text,
            client_id=client_id,
            # A person chosen up front answers: no upstream call is drafted for it.
            draft_from=None if frame.answerer == services.ANSWERER_PERSON else self._draft_context(client_key),
            language=self.language,
            answerer=frame.answerer,
        )
        submission = stored.submission
        await self._emit(_ack(submission))
        if submission.reply is None and not submission.duplicate:  # a person answers this conversation
            self._humans_answer = True  # no draft for the next question, even before conversation_state arrives
            if client_key is not None:
                self._client_ids.add(client_key)
            return
        if submission.duplicate:
            reply = submission.reply
            running = answering.running_answer(conversation_id)
            # An answer being written here reaches this socket already (it watches the conversation).
            if reply is not None and (running is None or running.reply.pk != reply.pk):
                await self._await_reply(reply.pk)
            return
        self._context = None  # this answer changes the history: reloaded when it ends
        if client_key is not None:
            self._client_ids.add(client_key)
        answering.answer_start(stored, user=self.user, client_id=client_key, origin=self)

    def _draft_context(self, client_id: str | None) -> services.ChatContext | None:
        """The context to start the upstream call from before the question is stored, if any.

        None for a resend of a question this socket knows is stored (its answer exists), while an
        answer written elsewhere is awaited (the conversation is busy) and while the context is being
        reloaded after an answer: those take the ordinary path, starting after the commit.
        """
        if (
            self._context is None
            or self._humans_answer
            or self._awaiting
            or (client_id is not None and client_id in self._client_ids)
        ):
            return None
        return self._context

    async def on_stop(self, frame: frames.StopFrame) -> None:
        # From any of the customer's tabs; a no-op when nothing is streaming (it may have just finished).
        await answering.answer_stop(self.conversation.id)

    async def on_decision(self, frame: frames.DecisionFrame) -> None:
        # Only a card of this customer in this conversation (not_found otherwise, nothing runs).
        decided = await db(tool_turns.decision_take)(
            user=self.user, conversation_id=self.conversation.id, action_id=frame.action_id, confirm=frame.confirm
        )
        self._context = None  # the decision's line is history now: the next question starts after its commit
        await self._emit(decided)
        # Every other socket on the conversation (other tabs, an agent, other processes) sees the card decided.
        await events.publish(self.conversation.id, events.ACTION_DECIDED, frame=decided, sender=self.channel_name)

    async def chat_action_decided(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.ACTION_DECIDED: a card was decided from another socket."""
        if event.get("sender") != self.channel_name:
            self._context = None
            await self._emit(event["frame"])

    async def chat_tool_frame(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.TOOL_FRAME: a tool frame of an answer another process writes."""
        frame = event.get("frame") or {}
        if not events.is_local(event) and frame.get("message_id") in self._awaiting:
            await self._emit(frame)

    # -- the conversation's answers (answering.Watcher) -----------------------------------------

    async def watch_send(self, encoded: str) -> None:
        await self._send_encoded(encoded)

    async def watch_terminal(self, frame: dict[str, Any]) -> None:
        # The next question is drafted from a context that includes this answer; read BEFORE the
        # frame goes out, because a client may send its next message the moment it sees it.
        await self._reload_context()
        await self._emit(frame)

    async def _reload_context(self) -> None:
        """Read what the next question will be built from (an answer changed the history)."""
        if not self._connected or self.conversation is None:  # no next question on this socket
            return
        self._context = None
        try:
            context = await db(services.chat_context_load)(
                user=self.user, conversation=self.conversation, language=self.language
            )
        except Exception:  # the next question takes the ordinary path
            logger.warning("could not load the chat context", exc_info=True)
            return
        if answering.running_answer(self.conversation.id) is None:  # a question sent meanwhile started without it
            self._context = context

    # -- people: who answers, agents' messages ----------------------------------------------------

    async def chat_conversation_changed(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.CONVERSATION_CHANGED: an agent joined, handed back, resolved."""
        state = event.get("state", {})
        self._humans_answer = bool(state.get("humans_answer"))
        # A person's turn may have added to the history: the next question is not drafted from a context
        # read before it (its request would be cancelled); it is read after the next answer.
        self._context = None
        await self._emit({"type": "conversation_state", **state})

    async def chat_message_added(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.MESSAGE_ADDED: an agent's message, or a question this
        customer sent a person from another tab."""
        message = event.get("message") or {}
        if message.get("role") not in ("user", "agent"):  # nothing else is ever published here
            return
        if message.get("id") in self._transcript_ids:  # published while this socket connected: shown already
            return
        client_id = message.get("client_id")
        if client_id is not None:
            if client_id in self._client_ids:  # this socket sent it (it had the ack)
                return
            self._client_ids.add(client_id)
        await self._emit({"type": "message_added", "message": message})
        if message.get("role") == "agent":
            await self._seen_by_customer()

    async def _seen_by_customer(self) -> None:
        """The customer saw the agents' messages so far (not emailed to them then); not if the send failed."""
        if self._connected and self.conversation is not None:
            await db(handoffs.conversation_seen_by_customer)(conversation_id=self.conversation.pk)
            await events.publish(self.conversation.pk, events.CUSTOMER_SEEN)

    async def chat_customer_seen(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.CUSTOMER_SEEN: for agents watching; nothing to show here."""

    # -- answers written by another process (reconnect, resend, another tab there) ---------------

    async def chat_answer_started(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.ANSWER_STARTED."""
        if events.is_local(event):  # this process's sockets had it from the run itself
            return
        reply_id = event.get("message_id")
        if not isinstance(reply_id, int) or reply_id in self._awaiting:
            return
        self._context = None
        await self._emit({"type": "answer_started", "reply_id": reply_id, "question": event.get("question")})
        await self._await_reply(reply_id)

    async def chat_answer_stop(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.ANSWER_STOP: stop the answer if this process writes it."""
        if not events.is_local(event):
            answering.answer_stop_local(self.conversation.id)

    async def _await_reply(self, reply_id: int) -> None:
        """Send the stored result of `reply_id` now if it is finished, else when its writer announces it.

        The socket is in the conversation's group since it connected, so a finish between the read
        and now cannot be missed.
        """
        self._awaiting.add(reply_id)
        await self._send_stored_if_finished(reply_id)
        if reply_id in self._awaiting and reply_id not in self._remote:  # still being written: its text so far
            remote = self._remote[reply_id] = relay.RemoteText()
            remote.asked()
            await relay.text_want(self.conversation.id, reply_id, fresh=True)
            if self._wanting is None or self._wanting.done():
                self._wanting = asyncio.create_task(self._keep_wanting())

    async def _keep_wanting(self) -> None:
        """Repeat the requests for the awaited replies' text until they are stored (or the socket closes).
        Now and then read them too: a reply whose process died never announces its end, and is marked
        failed once stale — this socket then gets its terminal frame without a reconnect."""
        rounds = 0
        while self._connected and self._awaiting:
            await asyncio.sleep(relay.WANT_REFRESH_SECONDS)
            rounds += 1
            for reply_id in list(self._awaiting):
                if rounds % relay.STORED_CHECK_ROUNDS == 0:
                    await self._send_stored_if_finished(reply_id)
                if reply_id in self._awaiting:
                    await relay.text_want(self.conversation.id, reply_id, fresh=False)

    async def chat_answer_text(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.ANSWER_TEXT: text of an awaited answer another process writes."""
        reply_id = event.get("message_id")
        remote = self._remote.get(reply_id) if reply_id in self._awaiting else None
        if remote is None or events.is_local(event):
            return
        shown, ask = remote.apply(event)
        for frame in shown:
            await self._emit(frame)
        if ask:
            await relay.text_want(self.conversation.id, reply_id, fresh=True)

    async def chat_reply_finished(self, event: dict[str, Any]) -> None:
        """Channel-layer handler for events.REPLY_FINISHED."""
        if event.get("message_id") in self._awaiting:
            await self._send_stored_if_finished(event["message_id"])

    async def _send_stored_if_finished(self, reply_id: int) -> None:
        stored = await db(replies.stored_reply)(reply_id)
        if stored is None or reply_id not in self._awaiting:
            return
        self._awaiting.discard(reply_id)
        remote = self._remote.pop(reply_id, None) or relay.RemoteText()
        if not self._awaiting and answering.running_answer(self.conversation.id) is None:
            await self._reload_context()  # that answer changed the history
        for frame in remote.final_frames(stored[0].text, replies.stored_reply_frames(*stored)):
            await self._emit(frame)

    # -- sending ----------------------------------------------------------------------------

    async def _emit(self, frame: dict[str, Any]) -> None:
        if self._connected:
            await self._send_encoded(dumps(frame))

    async def _send_encoded(self, encoded: str) -> None:
        if not self._connected:
            return
        try:
            await self.send(text_data=encoded)
        except Exception:  # the client went away; the answer is still stored
            self._connected = False


# -- helpers (no socket state) -----------------------------------------------------------------


def _agent_message_unseen(conversation: Conversation, messages: list[Message]) -> bool:
    """Whether the transcript just shown holds an agent's message newer than the customer last saw (a
    reconnect that shows nothing new writes nothing)."""
    seen = conversation.customer_seen_at
    return any(m.role == Message.Role.AGENT and (seen is None or m.created_at > seen) for m in messages)


async def _rate_limited(user: Any) -> bool:
    return await rate_limit_hit_async(key=f"chat:user:{user.pk}", limit=settings.CHAT_RATE_LIMIT_PER_MINUTE)


def _group_to_resume(requested: str | None) -> str | None:
    """The group of the conversation a socket asks to resume, if the id is well formed (authorised later)."""
    if requested is None:
        return None
    try:
        return events.conversation_group(uuid.UUID(requested))
    except ValueError:
        return None


# Enough for every message stored while a socket connects (a few milliseconds; see connect()).
TRANSCRIPT_IDS_KEPT = 20


def _newest_ids(messages: list[Message]) -> frozenset[int]:
    return frozenset(m.pk for m in messages[-TRANSCRIPT_IDS_KEPT:])


def _conversation_open_sync(
    user: Any, requested: str | None, language: str = ""
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
        tool_turns.actions_attach(user=user, conversation=conversation, messages=messages)
    return conversation, messages, services.chat_context_load(user=user, conversation=conversation, language=language)


async def _conversation_open(
    user: Any, requested: str | None, language: str = ""
) -> tuple[Conversation, list[Message], services.ChatContext | None]:
    return await db(_conversation_open_sync)(user, requested, language)


def _ack(submission: services.Submission) -> dict[str, Any]:
    question = submission.question
    return {
        "type": "ack",
        "client_id": str(question.client_id) if question.client_id else None,
        "message_id": question.pk,
        "reply_id": submission.reply.pk if submission.reply else None,
        "duplicate": submission.duplicate,
    }
