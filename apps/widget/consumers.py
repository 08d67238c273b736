"""The widget's websocket, /ws/widget/<key>/: the chat protocol of docs/protocol.md for a site's visitor.

It authenticates by the visitor token (and an optional signed identity) in the query string instead of
a login session, then chats exactly like the logged-in chat, as the visitor's own user or as the
verified customer. Before a question reaches the model it checks the widget's limits; past a cap it
offers to leave a message for the team (a `leave_message` frame) instead of calling the model.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from apps.chat import frames, handoffs
from apps.chat.answering import db, dumps
from apps.chat.consumers import ChatConsumer
from apps.core.exceptions import ApplicationError, NotFound, RateLimited
from apps.widget import limits, selectors, services

logger = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429


def _visitor_open(
    *, key: str, token: Any, user_id: Any, signature: Any, expires: Any, ip: str
) -> services.WidgetIdentity:
    site = selectors.site_get_enabled(key)
    if not selectors.visitor_token_names_visitor(site=site, token=token) and not limits.new_visitor_allowed(ip=ip):
        raise RateLimited("Too many new chats from this address; try again later.", retry_after=3600)
    return services.visitor_authenticate(site=site, token=token, user_id=user_id, signature=signature, expires=expires)


class WidgetConsumer(ChatConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.identity: services.WidgetIdentity | None = None
        self._claimed: str | None = None  # a guest conversation this connection gave to the customer

    async def connect(self) -> None:
        first = self._query()
        try:
            self.identity = await db(_visitor_open)(
                key=self.scope["url_route"]["kwargs"]["key"],
                token=first.get("token"),
                user_id=first.get("user_id"),
                signature=first.get("user_hash"),
                expires=first.get("user_expires"),
                ip=self._ip(),
            )
        except ApplicationError as exc:
            await self.accept()
            await self._send_frame(exc.as_frame())
            await self.close(code=CLOSE_NOT_FOUND if isinstance(exc, NotFound) else CLOSE_TOO_MANY)
            return
        # Used only for an anonymous visitor (a customer's account has a language).
        self.language = selectors.visitor_language(
            requested=first.get("lang"), accept_language=self._header("accept-language")
        )
        if self.identity.identified and not first.get("conversation") and first.get("guest_conversation"):
            # Signed in for the first time in this browser: the guest chat goes on as the customer's.
            claimed = await db(services.visitor_conversation_claim)(
                identity=self.identity, conversation_id=first["guest_conversation"]
            )
            self._claimed = str(claimed.pk) if claimed is not None else None
        # The chat runs as this user; any login session of the support site's own (a cookie sent along)
        # plays no part here.
        self.scope["user"] = self.identity.user
        self.scope["session"] = None
        await super().connect()
        if self.conversation is None:  # refused (another visitor's conversation id): closed already
            return
        await db(services.site_conversation_record)(identity=self.identity, conversation=self.conversation)
        if self.conversation.humans_answer and self.conversation.assigned_agent_id is None:
            # Still waiting for a person (a reload, a visit later): how they will be answered, as when asked.
            state = await db(handoffs.waiting_state)(self.conversation)
            await self._send_frame({"type": "conversation_state", **state})

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Accepted: the visitor frame goes first, so the frame knows who it is (the token to keep, whether
        the identity was accepted and why not) before the conversation, or before a refusal of it."""
        await super().accept(subprotocol, headers)
        if self.identity is not None:
            frame: dict[str, Any] = {
                "type": "visitor",
                "token": self.identity.token,
                "identified": self.identity.identified,
            }
            if self.identity.identity_error:
                frame["identity_error"] = self.identity.identity_error
            if not self.identity.identified:  # where the team can answer an anonymous visitor by email
                frame["email_left"] = bool(self.identity.visitor.email)
            await self._send_frame(frame)

    def requested_conversation(self) -> str | None:
        """The signed-in customer's conversation (`conversation`) only when the identity was accepted; an
        identity that was not (forged, expired) chats as the guest and resumes the guest's conversation
        (`guest_conversation`), leaving the customer's as it is for when it is accepted again. A customer
        with no conversation in this browser yet goes on with the guest's (`visitor_conversation_claim`)."""
        query = self._query()
        if self.identity is not None and self.identity.identity_error:
            return query.get("guest_conversation")
        return self._claimed or query.get("conversation")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None or self.identity is None:
            return
        try:
            frame = frames.frame_object(text_data)
        except ApplicationError:
            frame = {}  # the chat's own parsing answers it with the documented error
        if frame.get("type") in ("leave_message", "human_request"):
            # Each writes a ticket: counted by the widget's rate limits, like a question.
            hit = await limits.rate_limit_check(visitor_id=self.identity.visitor.pk, ip=self._ip())
            if hit is not None:
                await self._send_frame(hit.as_error().as_frame())
            elif frame["type"] == "leave_message":
                await self._leave_message(frame)
            else:
                await self._human_request()
            return
        await super().receive(text_data, bytes_data)

    async def on_message(self, frame: frames.MessageFrame) -> None:
        """A question, once the widget's limits allow it; past one, the chat's error frame (with the
        question's client_id) tells the visitor, offering to leave a message where that helps."""
        hit = await limits.rate_limit_check(visitor_id=self.identity.visitor.pk, ip=self._ip())
        if hit is None:
            hit = await db(limits.question_check)(
                site=self.identity.site,
                conversation_id=self.conversation.pk,
                user=self.identity.user,
                identified=self.identity.identified,
                answerer=frame.answerer,
            )
        if hit is not None:
            raise hit.as_error()
        await super().on_message(frame)

    async def _leave_message(self, frame: dict[str, Any]) -> None:
        try:
            ticket = await db(services.visitor_message_leave)(
                identity=self.identity, conversation=self.conversation, text=frame.get("text"), email=frame.get("email")
            )
        except ApplicationError as exc:
            await self._send_frame(exc.as_frame())
            return
        await self._send_frame({"type": "left", "ticket_id": ticket.pk})

    async def _human_request(self) -> None:
        """ "Talk to a human": the handoff; `conversation_state` follows (through the conversation's group)
        with how the visitor will be answered."""
        try:
            ticket = await db(services.visitor_human_request)(identity=self.identity, conversation=self.conversation)
        except Exception:  # e.g. the database is unreachable: nothing changed, the visitor may ask again
            logger.exception("could not hand a widget chat to the team")
            await self._send_frame(
                {"type": "error", "code": "server_error", "message": "That did not go through. Please try again."}
            )
            return
        self._humans_answer = True  # no draft for the next question, even before conversation_state arrives
        await self._send_frame({"type": "human_requested", "ticket_id": ticket.pk})

    def _query(self) -> dict[str, str]:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return {name: values[0] for name, values in query.items()}

    def _header(self, name: str) -> str:
        wanted = name.encode()
        for key, value in self.scope.get("headers", []):
            if key.lower() == wanted:
                return value.decode("latin-1")
        return ""

    def _ip(self) -> str:
        client = self.scope.get("client") or ("unknown", 0)
        return str(client[0])

    async def _send_frame(self, frame: dict[str, Any]) -> None:
        try:
            await self.send(text_data=dumps(frame))
        except Exception:  # the visitor went away
            logger.debug("widget frame not sent", exc_info=True)
