"""The gateway request behind an agent's "Suggest a reply" (apps/inbox/copilot.py).

The same cached prompt version as the conversation's answers, the customer's account context and the
whole conversation (agents' messages included); the new user turn is what the customer wrote since the
last answer, with a line saying that a person reviews and sends the draft. The draft is never sent
to the customer by this code.
"""

from __future__ import annotations

from dataclasses import replace

from django.contrib.auth.models import AbstractBaseUser

from apps.chat.models import Conversation
from apps.chat.payloads import agent_name
from apps.chat.selectors import conversation_history_turns
from apps.chat.services import _chat_context, conversation_prompt_version_assign
from apps.core.exceptions import ApplicationError
from apps.llm.types import ChatRequest

DRAFT_TAG = "agent_draft_request"


def draft_request(*, conversation: Conversation, agent: AbstractBaseUser) -> ChatRequest:
    """The request for a draft reply in `conversation`, which `agent` will edit and send as their own.

    Raises `ApplicationError` ("nothing_to_answer") when the customer has not written since the last
    reply, and what choosing a prompt version raises.
    """
    turns = list(conversation_history_turns(conversation)[conversation.summary_turns :])
    pending: list[str] = []
    while turns and turns[-1].role == "user":  # the customer's messages since the last answer
        pending.insert(0, turns.pop().text)
    if not pending:
        raise ApplicationError("The customer has not written since the last reply.", code="nothing_to_answer")
    version = conversation_prompt_version_assign(conversation=conversation)
    context = _chat_context(
        user=conversation.user, conversation=conversation, prompt=version.to_parts(), before=None, history=tuple(turns)
    )
    note = (
        f"<{DRAFT_TAG}>Write the reply that {agent_name(agent)}, a person from the support team who now answers "
        "this customer, will review, edit and send in their own name. Answer the customer's latest message "
        f"directly; do not mention that this is a draft.</{DRAFT_TAG}>"
    )
    request = context.request("\n\n".join(pending))
    return replace(request, turn_context="\n\n".join(p for p in (context.turn_context, note) if p))
