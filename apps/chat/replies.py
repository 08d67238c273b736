"""The frames of an answer's end: its terminal frame, and a finished reply for a socket that did not see
it being written (a reload, another process's answer)."""

from __future__ import annotations

from typing import Any

from apps.chat import selectors, services
from apps.chat.models import Message
from apps.chat.payloads import message_payload

GENERATION_FAILED = {
    "type": "error",
    "code": "generation_failed",
    "message": "The assistant could not answer. Please try again.",
}


def stored_reply(reply_id: int) -> tuple[Message, int | None] | None:
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


def streaming_replies(conversation_id: object) -> list[tuple[int, dict[str, Any] | None]]:
    """The conversation's answers being written now (by any process), each with its question's
    payload; a row left by a process that died (stale) is not one."""
    rows = Message.objects.select_related("reply_to").filter(
        conversation_id=conversation_id, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
    )
    return [
        (row.pk, message_payload(row.reply_to) if row.reply_to else None)
        for row in rows
        if not selectors.message_streaming_is_stale(row)
    ]


def stored_reply_frames(reply: Message, ticket_id: int | None) -> list[dict[str, Any]]:
    """The frames that give a socket a finished reply it did not see being written: its whole text as
    one delta, then its terminal frame."""
    client_id = str(reply.reply_to.client_id) if reply.reply_to and reply.reply_to.client_id else None
    if reply.status == Message.Status.FAILED:
        return [{**GENERATION_FAILED, "message_id": reply.pk, "client_id": client_id}]
    frames: list[dict[str, Any]] = [{"type": "delta", "text": reply.text}] if reply.text else []
    extra = {"ticket_id": ticket_id} if ticket_id else {}
    frames.append(
        done_frame(
            reply,
            status=reply.status,
            client_id=client_id,
            model=reply.model,
            prompt_version=reply.prompt_version,
            **extra,
        )
    )
    return frames


def done_frame(
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
