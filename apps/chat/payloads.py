"""How conversations and messages look on the wire (docs/protocol.md); the same for customers and agents."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from apps.chat.models import Conversation, Message


def agent_name(agent: AbstractBaseUser | None) -> str:
    """What customers see of an agent: the first name, else the username."""
    if agent is None:
        return ""
    return (getattr(agent, "first_name", "") or "").strip() or agent.get_username()


def message_payload(message: Message) -> dict[str, Any]:
    feedback = getattr(message, "feedback", None) if message.role == Message.Role.ASSISTANT else None
    payload = {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "client_id": str(message.client_id) if message.client_id else None,
        "model": message.model,
        "prompt_version": message.prompt_version,
        "created_at": message.created_at.isoformat(),
        "feedback": feedback.rating if feedback else None,
        "sources": cited_sources(message.citations),
    }
    if message.action_id is not None:  # the line saying what came of this confirmation card
        payload["action_id"] = message.action_id
    if message.role == Message.Role.AGENT:
        payload["author"] = agent_name(message.author)
        payload["author_id"] = message.author_id
    return payload


def cited_sources(citations: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The articles an answer cited, once each, in citation order: what the page links under the answer."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for citation in citations or []:
        key = (citation.get("title", ""), citation.get("url", ""))
        seen.setdefault(key, {"title": key[0], "url": key[1]})
    return list(seen.values())


# What a `conversation_state` notice says (`notice_code`), for clients that word it themselves (the widget).
NOTICE_WAITING = "waiting"  # a person was asked for; `reach` and `back_at` say how they will answer
NOTICE_AGENT_JOINED = "agent_joined"
NOTICE_HANDED_BACK = "handed_back"
NOTICE_RESOLVED = "resolved"


def conversation_state(
    conversation: Conversation, *, notice: str = "", notice_code: str = "", **extra: Any
) -> dict[str, Any]:
    """Who answers the conversation now, and the line the customer is shown about a change (`notice`,
    and what it says as a code: `notice_code`, "" with no notice; `extra` adds its details)."""
    return {
        "status": conversation.status,
        "agent": agent_name(conversation.assigned_agent) if conversation.assigned_agent_id else None,
        "humans_answer": conversation.humans_answer,
        "notice": notice,
        "notice_code": notice_code,
        **extra,
    }


def company_name() -> str:
    return settings.SUPPORT_COMPANY_NAME
