"""Who answers a conversation: the assistant, or a person (docs/inbox.md).

Writes of the handoff state and of agents' messages. The inbox calls these after authorising its agent
(it never writes chat's models itself); each change is published to the conversation's group (the
customer's sockets, agents watching) and to the handoff queue's group, after commit.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.chat import events, payloads
from apps.chat.models import Conversation, Message
from apps.core import db
from apps.core.exceptions import ApplicationError

REASON_CHARS = 300


def _publish_state(conversation: Conversation, *, notice: str, notice_code: str = "", **extra: object) -> None:
    state = payloads.conversation_state(conversation, notice=notice, notice_code=notice_code, **extra)
    events.publish_after_commit(events.conversation_group(conversation.pk), events.CONVERSATION_CHANGED, state=state)
    events.publish_after_commit(events.HANDOFFS_GROUP, events.QUEUE_CHANGED, conversation_id=str(conversation.pk))


def _locked(conversation_id: object) -> Conversation:
    return Conversation.objects.select_for_update(of=("self",)).select_related("assigned_agent").get(pk=conversation_id)


def _waiting_fields() -> dict[str, object]:
    from apps.chat import availability

    waiting = availability.waiting()
    return {
        "notice": waiting.notice,
        "notice_code": payloads.NOTICE_WAITING,
        "reach": waiting.reach,
        "back_at": waiting.back_at,
    }


def waiting_state(conversation: Conversation) -> dict[str, object]:
    """The `conversation_state` of a conversation whose request waits for a person: what the customer is
    told (hours and presence aware), also as `reach` / `back_at` (apps.chat.availability)."""
    return payloads.conversation_state(conversation, **_waiting_fields())


def conversation_human_request(*, conversation_id: object, source: str, reason: str = "") -> Conversation:
    """A person is needed: the conversation joins the agents' queue (unless an agent owns it already).

    `source`: Conversation.HandoffSource (user, assistant, degraded). Idempotent: a second request keeps
    the first one's waiting time. Expects the caller to have authorised access to the conversation.
    """
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.status == Conversation.Status.WITH_AGENT:
            return conversation
        if conversation.status != Conversation.Status.NEEDS_HUMAN or conversation.handoff_at is None:
            conversation.handoff_at = timezone.now()
        # A customer's or the assistant's request outranks a degraded answer (it routes messages to people).
        if conversation.handoff_source in ("", Conversation.HandoffSource.DEGRADED) or source != "degraded":
            conversation.handoff_source = source
        if reason:
            conversation.handoff_reason = reason.strip()[:REASON_CHARS]
        conversation.status = Conversation.Status.NEEDS_HUMAN
        conversation.save(update_fields=["status", "handoff_source", "handoff_reason", "handoff_at", "updated_at"])
        if conversation.humans_answer:
            _publish_state(conversation, **_waiting_fields())
        else:  # a degraded answer: the assistant goes on answering, nothing to tell
            _publish_state(conversation, notice="")
        transaction.on_commit(lambda: _notify_team(str(conversation.pk)))
    return conversation


def _notify_team(conversation_id: str) -> None:
    from apps.chat.tasks import handoff_notify

    handoff_notify.delay(conversation_id)


def check_agent_owns(conversation: Conversation, agent: AbstractBaseUser) -> None:
    """Raises `ApplicationError` ("not_claimed") unless `agent` owns the conversation."""
    if conversation.assigned_agent_id != agent.pk:
        raise ApplicationError("Claim the conversation first.", code="not_claimed")


def conversation_assign(
    *, conversation_id: object, agent: AbstractBaseUser, assignee: AbstractBaseUser
) -> Conversation:
    """`agent` claims the conversation for `assignee` (themselves, or a colleague). Both are authorised
    agents. The assistant stops answering; the customer sees "<assignee> from <company> joined".

    Raises `ApplicationError` ("claimed_by_other") if another agent owns it and `agent` is not that agent,
    ("closed") for a resolved conversation.
    """
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.status == Conversation.Status.CLOSED:
            raise ApplicationError("This conversation is resolved.", code="closed")
        owner = conversation.assigned_agent_id
        if owner is not None and owner not in (agent.pk, assignee.pk):
            raise ApplicationError("Another agent owns this conversation.", code="claimed_by_other")
        if owner == assignee.pk:
            return conversation
        conversation.assigned_agent = assignee
        conversation.status = Conversation.Status.WITH_AGENT
        conversation.save(update_fields=["assigned_agent", "status", "updated_at"])
        name = payloads.agent_name(assignee)
        _publish_state(
            conversation,
            notice=f"{name} from {payloads.company_name()} joined.",
            notice_code=payloads.NOTICE_AGENT_JOINED,
        )
    return conversation


def agent_message_send(*, conversation_id: object, agent: AbstractBaseUser, text: str) -> Message:
    """Store an agent's message (role `agent`, with the agent) and send it to the customer live.

    Raises `ApplicationError` ("not_claimed") unless `agent` owns the conversation, and what
    `services.check_message_text` raises for the text.
    """
    from apps.chat.services import check_message_text

    text = check_message_text(text)
    with transaction.atomic():
        conversation = _locked(conversation_id)
        check_agent_owns(conversation, agent)
        message = Message(conversation=conversation, role=Message.Role.AGENT, text=text, author=agent)
        db.insert(message)
        db.update(conversation, ["updated_at"])
        message.author = agent
        events.publish_after_commit(
            events.conversation_group(conversation.pk),
            events.MESSAGE_ADDED,
            message=payloads.message_payload(message),
        )
        events.publish_after_commit(events.HANDOFFS_GROUP, events.QUEUE_CHANGED, conversation_id=str(conversation.pk))
    return message


def conversation_hand_back(*, conversation_id: object, agent: AbstractBaseUser) -> Conversation:
    """The agent gives the conversation back to the assistant, which answers the next question.

    Raises `ApplicationError` ("not_claimed") unless `agent` owns it.
    """
    with transaction.atomic():
        conversation = _locked(conversation_id)
        check_agent_owns(conversation, agent)
        _clear(conversation, status=Conversation.Status.OPEN)
        _publish_state(conversation, notice="You're back with the assistant.", notice_code=payloads.NOTICE_HANDED_BACK)
    return conversation


def conversation_resolve(*, conversation_id: object, agent: AbstractBaseUser) -> Conversation:
    """The agent marks the conversation resolved; a later question from the customer goes to the assistant.

    Raises `ApplicationError` ("claimed_by_other") if another agent owns it.
    """
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.assigned_agent_id not in (None, agent.pk):
            raise ApplicationError("Another agent owns this conversation.", code="claimed_by_other")
        _clear(conversation, status=Conversation.Status.CLOSED)
        _publish_state(
            conversation,
            notice="This conversation was marked resolved. Write again any time.",
            notice_code=payloads.NOTICE_RESOLVED,
        )
    return conversation


def _clear(conversation: Conversation, *, status: str) -> None:
    conversation.status = status
    conversation.assigned_agent = None
    conversation.handoff_source = Conversation.HandoffSource.NONE
    conversation.handoff_reason = ""
    conversation.handoff_at = None
    conversation.save(
        update_fields=["status", "assigned_agent", "handoff_source", "handoff_reason", "handoff_at", "updated_at"]
    )


def conversation_seen_by_customer(*, conversation_id: object) -> None:
    """The customer has the conversation in front of them now (its transcript opened, or an agent's
    message shown live): agents' messages so far are not emailed to them (apps.inbox.notifications).
    One UPDATE; `updated_at` (activity) is left alone."""
    Conversation.objects.filter(pk=conversation_id).update(customer_seen_at=timezone.now())


def conversation_replies_emailed(*, conversation_id: object, through: object) -> None:
    """Agents' messages up to `through` (the newest one's time) were emailed to the customer."""
    Conversation.objects.filter(pk=conversation_id).update(replies_emailed_through=through)
