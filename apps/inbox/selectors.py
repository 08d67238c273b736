"""Reads for the agents' inbox: who is an agent, the queue, one conversation as agents see it.

Agents may read every conversation (a customer's earlier threads help them answer); what they may do
to one is decided by apps.chat.handoffs (the owner acts). Every user-supplied id goes through
`conversation_get_for_agent` / `agent_get`: unknown or malformed ids are `NotFound`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from apps.accounts.selectors import account_context_for_user
from apps.chat import tool_turns
from apps.chat.models import Conversation, Message
from apps.chat.payloads import agent_name
from apps.core.exceptions import Forbidden, NotFound
from apps.inbox.models import AGENTS_GROUP, InternalNote
from apps.widget.models import Visitor


def is_agent(user: AbstractBaseUser | None) -> bool:
    """Whether `user` works at the inbox: active, logged in, a member of the "Support agents" group."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.groups.filter(name=AGENTS_GROUP).exists()


def check_agent(user: AbstractBaseUser | None) -> AbstractBaseUser:
    """`user` if it is an agent. Raises `Forbidden` ("not_an_agent") otherwise."""
    if not is_agent(user):
        raise Forbidden("The inbox is for the support team.", code="not_an_agent")
    return user


def agents_list() -> list[AbstractBaseUser]:
    """Every active agent, by name (whom a conversation can be assigned to)."""
    return list(
        get_user_model()
        .objects.filter(is_active=True, groups__name=AGENTS_GROUP)
        .order_by("first_name", "username")
        .distinct()
    )


def agent_get(agent_id: object) -> AbstractBaseUser:
    """The active agent `agent_id`. Raises `NotFound` ("agent_not_found") for anyone else or a bad id."""
    try:
        parsed = int(str(agent_id))
    except ValueError:
        parsed = None
    agent = (
        get_user_model().objects.filter(pk=parsed, is_active=True, groups__name=AGENTS_GROUP).first()
        if parsed is not None
        else None
    )
    if agent is None:
        raise NotFound("No such agent.", code="agent_not_found")
    return agent


def conversation_get_for_agent(agent: AbstractBaseUser, conversation_id: object) -> Conversation:
    """Any conversation, for an agent (`check_agent` first). Raises `Forbidden` for a non-agent and
    `NotFound` ("conversation_not_found") for an unknown or malformed id."""
    check_agent(agent)
    try:
        parsed = uuid.UUID(str(conversation_id))
    except ValueError:
        parsed = None
    conversation = (
        Conversation.objects.select_related("user", "assigned_agent").filter(pk=parsed).first()
        if parsed is not None
        else None
    )
    if conversation is None:
        raise NotFound("Conversation not found.", code="conversation_not_found")
    return conversation


@dataclass(frozen=True)
class CustomerSummary:
    """What an agent sees of the customer next to a conversation."""

    username: str
    plan_tier: str
    billing_status: str
    company: str
    seats: int
    open_tickets: int
    # An anonymous visitor of a site embedding the widget (no customer account, no plan): the site, and
    # the email they left for the reply ("" if none yet).
    visitor_site: str = ""
    reply_email: str = ""

    @property
    def line(self) -> str:
        if self.visitor_site:
            reply = f"reply to {self.reply_email}" if self.reply_email else "no email left"
            return f"no customer account · {reply}"
        parts = [self.plan_tier.capitalize() + " plan", self.billing_status]
        if self.company:
            parts.insert(0, self.company)
        if self.seats:
            parts.append(f"{self.seats} seat" + ("s" if self.seats != 1 else ""))
        if self.open_tickets:
            parts.append(f"{self.open_tickets} open tickets")
        return " · ".join(p for p in parts if p)


def widget_visitor(user: AbstractBaseUser) -> Visitor | None:
    """The anonymous widget visitor `user` is, with their site; None for a customer."""
    # Visitors chat as inactive users of their own; an active user is never one (no query for customers).
    if user.is_active:
        return None
    return Visitor.objects.select_related("site").filter(user=user).first()


def customer_name(user: AbstractBaseUser) -> str:
    """Who wrote the customer's messages, as agents see it: the username, or "Visitor" for a widget visitor."""
    return "Visitor" if widget_visitor(user) is not None else user.get_username()


def customer_summary(user: AbstractBaseUser) -> CustomerSummary:
    visitor = widget_visitor(user)
    if visitor is not None:  # no account, so no plan or billing facts: where they chat, and how to answer
        return CustomerSummary(
            username=f"Visitor on {visitor.site.name}",
            plan_tier="",
            billing_status="",
            company="",
            seats=0,
            open_tickets=0,
            visitor_site=visitor.site.name,
            reply_email=visitor.email,
        )
    account = account_context_for_user(user)  # cached; the same facts the assistant is given
    return CustomerSummary(
        username=user.get_username(),
        plan_tier=account.plan_tier,
        billing_status=account.billing_status,
        company=account.company,
        seats=account.seats,
        open_tickets=len(account.open_tickets),
    )


@dataclass(frozen=True)
class QueueItem:
    conversation_id: str
    title: str
    status: str
    source: str  # Conversation.HandoffSource's label: who asked for a person
    reason: str
    waiting_since: dt.datetime | None
    wait_seconds: int
    agent: str  # the owner's name ("" while waiting)
    agent_id: int | None
    customer: CustomerSummary
    last_message: str

    @property
    def why(self) -> str:
        """Who asked, and why (once: a degraded answer's reason repeats its source)."""
        if not self.reason or self.reason == self.source:
            return self.source
        return f"{self.source}: {self.reason}" if self.source else self.reason

    @property
    def wait_label(self) -> str:
        minutes = self.wait_seconds // 60
        if minutes < 1:
            return "under a minute"
        if minutes < 60:
            return f"{minutes} min"
        return f"{minutes // 60} h {minutes % 60:02d} min"


def _last_messages(conversation_ids: list[object]) -> dict[object, str]:
    last: dict[object, str] = {}
    for conversation_id, text in (
        Message.objects.filter(conversation_id__in=conversation_ids)
        .exclude(status=Message.Status.STREAMING)
        .order_by("conversation_id", "-created_at", "-id")
        .values_list("conversation_id", "text")
    ):
        last.setdefault(conversation_id, text)
    return last


def queue_list(*, now: dt.datetime | None = None) -> list[QueueItem]:
    """Conversations needing a person: the waiting ones oldest first (longest wait on top), then those
    agents own, oldest handoff first."""
    now = now or timezone.now()
    conversations = list(
        Conversation.objects.filter(
            Q(status=Conversation.Status.NEEDS_HUMAN) | Q(status=Conversation.Status.WITH_AGENT)
        ).select_related("user", "assigned_agent")
    )
    conversations.sort(
        key=lambda c: (c.status != Conversation.Status.NEEDS_HUMAN, c.handoff_at or c.updated_at, str(c.pk))
    )
    last = _last_messages([c.pk for c in conversations])
    items = []
    for conversation in conversations:
        since = conversation.handoff_at
        items.append(
            QueueItem(
                conversation_id=str(conversation.pk),
                title=conversation.title or "(no title)",
                status=conversation.status,
                source=conversation.get_handoff_source_display() if conversation.handoff_source else "",
                reason=conversation.handoff_reason,
                waiting_since=since,
                wait_seconds=max(0, int((now - since).total_seconds())) if since else 0,
                agent=agent_name(conversation.assigned_agent) if conversation.assigned_agent_id else "",
                agent_id=conversation.assigned_agent_id,
                customer=customer_summary(conversation.user),
                last_message=(last.get(conversation.pk) or "")[:140],
            )
        )
    return items


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a conversation as agents see it: a message, or an internal note."""

    kind: str  # "message" | "note"
    id: int
    role: str  # "user" | "assistant" | "agent" | "note"
    author: str
    text: str
    status: str
    created_at: dt.datetime
    actions: tuple[TimelineAction, ...] = field(default=())  # an answer's tool calls
    delivery: str = ""  # an agent's message: whether the customer saw it, or had it by email


def _delivery(conversation: Conversation, message: Message) -> str:
    if message.role != Message.Role.AGENT:
        return ""
    if conversation.customer_seen_at is not None and message.created_at <= conversation.customer_seen_at:
        return "Seen by the customer"
    if conversation.replies_emailed_through is not None and message.created_at <= conversation.replies_emailed_through:
        return "Emailed to the customer"
    return "Not seen by the customer yet"


@dataclass(frozen=True)
class TimelineAction:
    """A tool call of an answer as agents see it: its progress line and, for an action the customer
    confirms, its card — read-only (only the customer decides it)."""

    action_id: int
    line: str  # "Sending your invoice: done"
    state: str  # "done" | "failed", as on the customer's page
    summary: str  # the card's text; "" for a call that asked no confirmation
    decision: str  # "" while the card waits for the customer
    outcome: str  # what came of the card, once decided

    @classmethod
    def of(cls, payload: dict[str, Any]) -> TimelineAction:
        """From `tool_turns.action_payload` (what the customer's transcript carries)."""
        failed = payload["status"] in ("failed", "rejected")
        line = str(payload["progress"]).rstrip("\u2026") + (": failed, nothing changed" if failed else ": done")
        return cls(
            action_id=payload["action_id"],
            line=line,
            state="failed" if failed else "done",
            summary=payload["summary"],
            decision=payload["decision"],
            outcome=payload["message"],
        )


def conversation_timeline(conversation: Conversation) -> list[TimelineEntry]:
    """The transcript with the internal notes in between, in time order, each answer with its tool
    calls. An answer still being written is left out: agents watching get it live, and stored when
    it ends."""
    customer = customer_name(conversation.user)
    messages = [
        message
        for message in conversation.messages.select_related("author").order_by("created_at", "id")
        if message.status != Message.Status.STREAMING
    ]
    tool_turns.actions_attach(user=conversation.user, conversation=conversation, messages=messages)
    entries = [
        TimelineEntry(
            kind="message",
            id=message.pk,
            role=message.role,
            author={Message.Role.USER: customer, Message.Role.ASSISTANT: "Assistant"}.get(
                message.role, agent_name(message.author)
            ),
            text=message.text,
            status=message.status,
            created_at=message.created_at,
            actions=tuple(TimelineAction.of(payload) for payload in message.shown_actions),
            delivery=_delivery(conversation, message),
        )
        for message in messages
    ]
    entries += [
        TimelineEntry(
            kind="note",
            id=note.pk,
            role="note",
            author=agent_name(note.author) if note.author_id else "(former agent)",
            text=note.text,
            status="",
            created_at=note.created_at,
        )
        for note in InternalNote.objects.filter(conversation=conversation).select_related("author")
    ]
    return sorted(entries, key=lambda e: (e.created_at, e.kind == "note", e.id))
