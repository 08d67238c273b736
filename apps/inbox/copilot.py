"""Copilot: "Suggest a reply" drafts an answer for the agent to edit. Never sent by itself.

A draft is a logged gateway call like any answer (task type `agent_draft`, with the prompt version and
its cost in the call log), built by apps/chat/drafts.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from apps.chat import handoffs
from apps.chat.answering import db
from apps.chat.drafts import draft_request
from apps.core.exceptions import ApplicationError
from apps.inbox import selectors
from apps.llm.gateway import chat_stream
from apps.llm.models import TaskType
from apps.llm.types import ChatRequest, Finished


@dataclass(frozen=True)
class Draft:
    text: str
    model: str
    prompt_version: str


def _prepare(agent: AbstractBaseUser, conversation_id: object) -> ChatRequest:
    conversation = selectors.conversation_get_for_agent(agent, conversation_id)
    handoffs.check_agent_owns(conversation, agent)
    return draft_request(conversation=conversation, agent=agent)


async def reply_suggest(*, agent: AbstractBaseUser, conversation_id: object) -> Draft:
    """A draft reply for the conversation the agent owns.

    Raises `Forbidden`, `NotFound`, "not_claimed" (another agent's or nobody's conversation),
    "nothing_to_answer", and "draft_unavailable" when no model could write one.
    """
    request = await db(_prepare)(agent, conversation_id)
    outcome = None
    async for event in chat_stream(request, task_type=TaskType.AGENT_DRAFT):
        if isinstance(event, Finished):
            outcome = event.outcome
    if outcome is None or outcome.status != "complete" or not outcome.text.strip():
        raise ApplicationError(
            "No draft could be written right now; answer in your own words.", code="draft_unavailable"
        )
    return Draft(text=outcome.text.strip(), model=outcome.model, prompt_version=outcome.prompt_version)
