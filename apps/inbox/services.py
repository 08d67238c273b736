"""What agents do at the inbox. Each function checks that its user is an agent, then calls the chat's
handoff services (apps/chat/handoffs.py), which decide who may act on a conversation: only its owner
replies, hands back or resolves; nobody takes a conversation another agent owns unless that agent
assigns it to them. Notes are the inbox's own rows.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from apps.chat import events, handoffs
from apps.chat.models import Conversation, Message
from apps.chat.payloads import agent_name
from apps.chat.services import check_message_text
from apps.inbox import selectors
from apps.inbox.models import AGENTS_GROUP, InternalNote

# Published to the agents only (events.HANDOFFS_GROUP, which no customer socket joins):
# {"conversation_id", "note": {...}}.
NOTE_ADDED = "inbox.note_added"


def conversation_claim(*, agent: AbstractBaseUser, conversation_id: object) -> Conversation:
    """The agent takes the conversation. Raises `Forbidden`, `NotFound`, and what
    `handoffs.conversation_assign` raises ("claimed_by_other", "closed")."""
    conversation = selectors.conversation_get_for_agent(agent, conversation_id)
    return handoffs.conversation_assign(conversation_id=conversation.pk, agent=agent, assignee=agent)


def conversation_assign(*, agent: AbstractBaseUser, conversation_id: object, assignee_id: object) -> Conversation:
    """The agent gives the conversation (unowned, or their own) to a colleague. Raises `NotFound`
    ("agent_not_found") for an assignee who is not an agent, and what `conversation_claim` raises."""
    conversation = selectors.conversation_get_for_agent(agent, conversation_id)
    assignee = selectors.agent_get(assignee_id)
    return handoffs.conversation_assign(conversation_id=conversation.pk, agent=agent, assignee=assignee)


def agent_reply(*, agent: AbstractBaseUser, conversation_id: object, text: object) -> Message:
    """Send the customer a message (live, over their socket). Raises "not_claimed" unless the agent owns
    the conversation, and the message-text errors."""
    conversation = selectors.conversation_get_for_agent(agent, conversation_id)
    return handoffs.agent_message_send(conversation_id=conversation.pk, agent=agent, text=text)


def conversation_hand_back(*, agent: AbstractBaseUser, conversation_id: object) -> Conversation:
    """The assistant answers again. Raises "not_claimed" unless the agent owns the conversation."""
    conversation = selectors.conversation_get_for_agent(agent, conversation_id)
    return handoffs.conversation_hand_back(conversation_id=conversation.pk, agent=agent)


def conversation_resolve(*, agent: AbstractBaseUser, conversation_id: object) -> Conversation:
    """Mark it resolved. Raises "claimed_by_other" if another agent owns it."""
    conversation = selectors.conversation_get_for_agent(agent, conversation_id)
    return handoffs.conversation_resolve(conversation_id=conversation.pk, agent=agent)


def note_add(*, agent: AbstractBaseUser, conversation_id: object, text: object) -> InternalNote:
    """Leave a note for the team on the conversation; any agent may, whoever owns it (notes change
    nothing the customer sees). Published to the agents only. Raises the message-text errors."""
    conversation = selectors.conversation_get_for_agent(agent, conversation_id)
    text = check_message_text(text)
    with transaction.atomic():
        note = InternalNote.objects.create(conversation=conversation, author=agent, text=text)
        events.publish_after_commit(
            events.HANDOFFS_GROUP,
            NOTE_ADDED,
            conversation_id=str(conversation.pk),
            note={
                "id": note.pk,
                "author": agent_name(agent),
                "text": note.text,
                "created_at": note.created_at.isoformat(),
            },
        )
    return note


def agent_make(*, user: AbstractBaseUser) -> AbstractBaseUser:
    """Add `user` to the "Support agents" group (they work at /inbox/ from their next page load)."""
    group, _ = Group.objects.get_or_create(name=AGENTS_GROUP)
    user.groups.add(group)
    return user


DEMO_AGENT_USERNAME = "dana"
DEMO_AGENT_EMAIL = "dana@acme.example"


def demo_agent_seed(*, password: str) -> AbstractBaseUser:
    """The demo's support agent (staff without admin permissions, in the agents' group). Idempotent:
    a changed password or profile is left alone."""
    user, created = get_user_model().objects.get_or_create(
        username=DEMO_AGENT_USERNAME,
        defaults={"email": DEMO_AGENT_EMAIL, "first_name": "Dana", "last_name": "Reyes", "is_staff": True},
    )
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    return agent_make(user=user)
