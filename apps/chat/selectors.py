"""Reads of conversations. Every read of a user-supplied id goes through `conversation_get_for_user`."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation, Feedback, Message
from apps.chat.payloads import agent_name
from apps.core.exceptions import NotFound
from apps.llm.types import Turn

# Assistant turns the model may see again as history: what the user saw of a real answer.
HISTORY_ASSISTANT_STATUSES = (Message.Status.COMPLETE, Message.Status.INCOMPLETE)


def _parse_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def conversation_get_for_user(
    user: AbstractBaseUser, conversation_id: object, *, staff_access: bool = False
) -> Conversation:
    """The conversation `conversation_id` if `user` owns it.

    Raises `NotFound` for anyone else's conversation, an unknown id or a malformed one: the three are
    indistinguishable to the caller. `staff_access=True` (the admin only) also lets staff read any.
    """
    parsed = _parse_uuid(conversation_id)
    if parsed is None or not user.is_authenticated:
        raise NotFound("Conversation not found.", code="conversation_not_found")
    queryset = Conversation.objects.select_related("prompt_version", "assigned_agent")
    if not (staff_access and user.is_staff):
        queryset = queryset.filter(user=user)
    conversation = queryset.filter(pk=parsed).first()
    if conversation is None:
        raise NotFound("Conversation not found.", code="conversation_not_found")
    return conversation


def conversation_list_for_user(user: AbstractBaseUser) -> QuerySet[Conversation]:
    """The user's conversations with at least one message, most recent activity first."""
    return (
        Conversation.objects.filter(user=user)
        .annotate(message_count=Count("messages"))
        .filter(message_count__gt=0)
        .order_by("-updated_at")
    )


def conversation_messages(conversation: Conversation) -> QuerySet[Message]:
    """The transcript in order, each assistant message with its feedback and each agent's message with
    its author preloaded (the socket builds their payloads on the event loop, where a lazy read fails)."""
    return conversation.messages.select_related("feedback", "author").order_by("created_at", "id")


def conversation_offers_choice(conversation: Conversation, *, has_messages: bool) -> bool:
    """Whether the customer is offered "Ask the assistant" / "Talk to a person" before the first question
    (`CHAT_OFFER_HUMAN_CHOICE`): only while nothing is written yet and nobody was asked for already."""
    return settings.CHAT_OFFER_HUMAN_CHOICE and not has_messages and not conversation.humans_answer


def conversation_with_messages(conversation: Conversation) -> Conversation:
    return Conversation.objects.prefetch_related(
        Prefetch("messages", queryset=Message.objects.select_related("feedback").order_by("created_at", "id"))
    ).get(pk=conversation.pk)


def message_get_for_user(user: AbstractBaseUser, message_id: object) -> Message:
    """A message in one of the user's conversations. Raises `NotFound` otherwise."""
    try:
        parsed = int(str(message_id))
    except ValueError:
        parsed = None
    message = (
        Message.objects.select_related("conversation").filter(pk=parsed, conversation__user=user).first()
        if parsed is not None and user.is_authenticated
        else None
    )
    if message is None:
        raise NotFound("Message not found.", code="message_not_found")
    return message


def message_feedback(message: Message) -> Feedback | None:
    return Feedback.objects.filter(message=message).first()


def conversation_history_turns(conversation: Conversation, *, before: Message | None = None) -> tuple[Turn, ...]:
    """The conversation before the question `before` (all of it without it), oldest first, for the model.

    An exchange with the assistant counts only when its answer was usable (complete or incomplete): a
    question whose answer failed or was an apology is left out with it. While a person answered, the
    customer's questions (they have no assistant reply) and the agent's messages (role "agent", on the
    assistant side: apps.llm.prompting.human_agent_text) are part of it, so the assistant resumes
    knowing what was said; so are the lines saying what came of a confirmation card (docs/actions.md),
    in the order the customer saw them. The list is deterministic, so `summary_turns` (how many of its oldest turns
    the summary covers) stays valid.
    """
    written = conversation.messages.filter(
        Q(role__in=(Message.Role.USER, Message.Role.AGENT)) | Q(action__isnull=False)
    )
    if before is not None:
        written = written.filter(pk__lt=before.pk)
    written = list(written.select_related("author").order_by("created_at", "id"))
    question_ids = [m.pk for m in written if m.role == Message.Role.USER]
    answered: set[int] = set()  # questions the assistant was asked to answer (whatever came of it)
    replies: dict[int, Message] = {}
    for reply in Message.objects.filter(reply_to__in=question_ids).only("reply_to", "status", "text"):
        answered.add(reply.reply_to_id)
        if reply.status in HISTORY_ASSISTANT_STATUSES:
            replies[reply.reply_to_id] = reply
    turns: list[Turn] = []
    for message in written:
        if message.role == Message.Role.AGENT:
            turns.append(Turn(role="agent", text=message.text, author=agent_name(message.author)))
            continue
        if message.action_id is not None:  # what came of a confirmation card, as the customer was told
            turns.append(Turn(role="assistant", text=message.text))
            continue
        reply = replies.get(message.pk)
        if reply is not None:
            turns.append(Turn(role="user", text=message.text))
            turns.append(Turn(role="assistant", text=reply.text))
        elif message.pk not in answered:  # written to a person: the assistant was never asked
            turns.append(Turn(role="user", text=message.text))
    return tuple(turns)


def conversation_transcript(conversation: Conversation) -> str:
    """Plain-text transcript for a human agent (ticket body)."""
    lines = [f"Conversation {conversation.id} — {conversation.user.get_username()}"]
    for message in conversation_messages(conversation):
        label = {Message.Role.USER: "Customer", Message.Role.AGENT: "Agent"}.get(message.role, "Assistant")
        suffix = "" if message.status == Message.Status.COMPLETE else f" [{message.status}]"
        lines.append(f"{label}{suffix}: {message.text}")
    return "\n".join(lines)


def message_streaming_is_stale(message: Message) -> bool:
    """A "streaming" row older than any generation can last: its process died (it will never finish)."""
    limit = timedelta(seconds=settings.LLM_TOTAL_TIMEOUT_SECONDS * 2 + 60)
    return message.status == Message.Status.STREAMING and message.created_at < timezone.now() - limit


def conversation_ticket_id(conversation_id: object, *, source: str = "degraded") -> int | None:
    """The newest ticket opened from this conversation for `source` (the degraded-answer ticket by default)."""
    ticket = SupportTicket.objects.filter(conversation_id=str(conversation_id), source=source).first()
    return ticket.pk if ticket else None
