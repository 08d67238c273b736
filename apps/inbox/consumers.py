"""The agents' inbox socket: transport only (docs/inbox.md, "The inbox socket").

It follows the queue (events.HANDOFFS_GROUP) and, at most one at a time, the conversation the agent has
open — its group for messages and changes of owner, and the answer being written as one of the
answer's watchers (apps/chat/answering.py), so the agent sees the tokens as the customer does — an
answer another server process writes too, its text forwarded while the agent watches (apps/chat/relay.py). While
open it counts the agent as online (apps/staffing). It never writes chat's data: actions go through
the inbox's HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from apps.chat import answering, events, relay, replies, tool_turns
from apps.chat.answering import db, dumps
from apps.core.exceptions import ApplicationError
from apps.inbox import selectors
from apps.staffing import services as staffing

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403


def _open_for_agent(user: Any, conversation_id: object) -> str:
    return str(selectors.conversation_get_for_agent(user, conversation_id).pk)


def _written_elsewhere(conversation_id: str) -> list[tuple[int, dict[str, Any] | None, list[dict[str, Any]]]]:
    """The conversation's answers being written (by another process: none runs here), each with its
    question and its tool frames so far."""
    return [
        (reply_id, question, tool_turns.stored_tool_frames(reply_id))
        for reply_id, question in replies.streaming_replies(conversation_id)
    ]


class InboxConsumer(AsyncWebsocketConsumer):
    """One agent's inbox page."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = None
        self.watched: str | None = None  # the conversation the agent has open
        self._connected = False
        self._joined = False
        # Answers another process writes in the watched conversation, and what the agent saw of them.
        self._remote: dict[int, relay.RemoteText] = {}
        self._wanting: asyncio.Task[None] | None = None  # repeats the requests for their text

    async def connect(self) -> None:
        await self.accept()
        self._connected = True
        user = self.scope.get("user")
        if not await db(selectors.is_agent)(user):
            await self._emit({"type": "error", "code": "not_an_agent", "message": "The inbox is for the support team."})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        await self.channel_layer.group_add(events.HANDOFFS_GROUP, self.channel_name)
        self._joined = True
        await db(staffing.presence_mark)(agent=user, channel_name=self.channel_name)
        await self._emit({"type": "inbox", "agent_id": user.pk})

    async def disconnect(self, code: int) -> None:
        self._connected = False
        if self._wanting is not None:
            self._wanting.cancel()
        await self._unwatch()
        if self._joined:
            await self.channel_layer.group_discard(events.HANDOFFS_GROUP, self.channel_name)
            await db(staffing.presence_clear)(channel_name=self.channel_name)
            self._joined = False

    # -- agent frames: {"type": "watch", "conversation": id} | {"type": "unwatch"} | {"type": "ping"} --

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:
            return
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            frame = None
        kind = frame.get("type") if isinstance(frame, dict) else None
        try:
            if kind == "watch":
                await self.on_watch(frame.get("conversation"))
            elif kind == "unwatch":
                await self._unwatch()
            elif kind == "ping":  # the page's heartbeat: the agent is still online
                await db(staffing.presence_mark)(agent=self.user, channel_name=self.channel_name)
                await self._emit({"type": "pong"})
            else:
                await self._emit({"type": "error", "code": "unknown_type", "message": "Unknown frame type."})
        except ApplicationError as exc:
            await self._emit(exc.as_frame())
        except Exception:
            logger.exception("could not handle an inbox frame")
            await self._emit({"type": "error", "code": "server_error", "message": "That did not go through."})

    async def on_watch(self, conversation_id: object) -> None:
        """Follow one conversation (authorised for agents; unknown ids are `conversation_not_found`)."""
        checked = await db(_open_for_agent)(self.user, conversation_id)
        if checked == self.watched:
            return
        await self._unwatch()
        self.watched = checked
        await self.channel_layer.group_add(events.conversation_group(checked), self.channel_name)
        await self._emit({"type": "watching", "conversation": checked})
        # An answer being written here now reaches the agent: `answer_started`, the text so far, live tokens.
        if await answering.conversation_watch(checked, self, known_reply_ids=set()) is None:
            # One written by another process: read after joining the group, so its end is not missed.
            for reply_id, question, tool_frames in await db(_written_elsewhere)(checked):
                await self._follow_remote(reply_id, question, tool_frames)

    async def _unwatch(self) -> None:
        if self.watched is None:
            return
        answering.conversation_unwatch(self.watched, self)
        self._remote.clear()
        await self.channel_layer.group_discard(events.conversation_group(self.watched), self.channel_name)
        self.watched = None

    # -- answering.Watcher: the answer in the watched conversation, as the customer sees it ----------

    async def watch_send(self, encoded: str) -> None:
        await self._send_encoded(encoded)

    async def watch_terminal(self, frame: dict[str, Any]) -> None:
        await self._emit(frame)

    # -- channel-layer events -------------------------------------------------------------------

    async def chat_queue_changed(self, event: dict[str, Any]) -> None:
        """A conversation joined or left the queue, changed owner, or got a message for a person."""
        await self._emit({"type": "queue_changed", "conversation_id": event.get("conversation_id")})

    async def inbox_note_added(self, event: dict[str, Any]) -> None:
        await self._emit(
            {"type": "note_added", "conversation_id": event.get("conversation_id"), "note": event.get("note")}
        )

    async def chat_conversation_changed(self, event: dict[str, Any]) -> None:
        await self._emit({"type": "conversation_state", "conversation_id": self.watched, **event.get("state", {})})

    async def chat_message_added(self, event: dict[str, Any]) -> None:
        await self._emit({"type": "message_added", "conversation_id": self.watched, "message": event.get("message")})

    async def chat_customer_seen(self, event: dict[str, Any]) -> None:
        """The customer saw the agents' messages so far: the pane's "Seen by the customer" lines change."""
        await self._emit({"type": "customer_seen", "conversation_id": self.watched})

    async def chat_action_decided(self, event: dict[str, Any]) -> None:
        """A card was decided: the conversation has the line saying what came of it."""
        await self._emit({**event.get("frame", {}), "conversation_id": self.watched})

    async def chat_tool_frame(self, event: dict[str, Any]) -> None:
        if not events.is_local(event):  # this process's watchers had it from the run itself
            await self._emit({**event.get("frame", {}), "conversation_id": self.watched})

    async def chat_answer_started(self, event: dict[str, Any]) -> None:
        reply_id = event.get("message_id")
        if not events.is_local(event) and isinstance(reply_id, int):  # local: the run itself sent it
            await self._follow_remote(reply_id, event.get("question"))

    async def _follow_remote(
        self, reply_id: int, question: dict[str, Any] | None, tool_frames: Sequence[dict[str, Any]] = ()
    ) -> None:
        """An answer another process writes: `answer_started` (and its tool frames so far, when the
        agent joins mid-answer), its text while the agent watches (apps/chat/relay.py), then
        `reply_stored`."""
        if reply_id in self._remote or self.watched is None:
            return
        await self._emit({"type": "answer_started", "reply_id": reply_id, "question": question})
        for frame in tool_frames:
            await self._emit({**frame, "conversation_id": self.watched})
        remote = self._remote[reply_id] = relay.RemoteText()
        remote.asked()
        await relay.text_want(self.watched, reply_id, fresh=True)
        if self._wanting is None or self._wanting.done():
            self._wanting = asyncio.create_task(self._keep_wanting())

    async def _keep_wanting(self) -> None:
        """Repeat the requests for the followed answers' text; now and then read them, so that one whose
        process died (marked failed once stale) ends with `reply_stored` too."""
        rounds = 0
        while self._connected and self._remote:
            await asyncio.sleep(relay.WANT_REFRESH_SECONDS)
            rounds += 1
            for reply_id in list(self._remote):
                if rounds % relay.STORED_CHECK_ROUNDS == 0 and await db(replies.stored_reply)(reply_id) is not None:
                    if self._remote.pop(reply_id, None) is not None:  # not ended meanwhile
                        await self._reply_stored(reply_id)
                elif reply_id in self._remote:
                    await relay.text_want(self.watched, reply_id, fresh=False)

    async def chat_answer_text(self, event: dict[str, Any]) -> None:
        """Text of an answer another process writes in the watched conversation (apps/chat/relay.py)."""
        remote = self._remote.get(event.get("message_id"))
        if remote is None or events.is_local(event):
            return
        shown, ask = remote.apply(event)
        for frame in shown:
            await self._emit(frame)
        if ask:
            await relay.text_want(self.watched, event["message_id"], fresh=True)

    async def chat_reply_finished(self, event: dict[str, Any]) -> None:
        if not events.is_local(event):
            # The pane reloads the transcript: the stored text replaces what was forwarded.
            self._remote.pop(event.get("message_id"), None)
            await self._reply_stored(event.get("message_id"))

    async def _reply_stored(self, reply_id: object) -> None:
        await self._emit({"type": "reply_stored", "conversation_id": self.watched, "reply_id": reply_id})

    async def chat_answer_stop(self, event: dict[str, Any]) -> None:
        """Only a customer stops an answer; the agent's socket has nothing to do."""

    # -- sending --------------------------------------------------------------------------------

    async def _emit(self, frame: dict[str, Any]) -> None:
        await self._send_encoded(dumps(frame))

    async def _send_encoded(self, encoded: str) -> None:
        if not self._connected:
            return
        try:
            await self.send(text_data=encoded)
        except Exception:  # the page went away
            self._connected = False
