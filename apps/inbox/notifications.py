"""Email a customer the agents' messages they have not seen.

When nobody can answer at once, the chat tells the customer their request is kept and answered "here and
by email" (apps.chat.availability). The answer comes later, when they may have left: an agent's message
that no socket of theirs has shown (`Conversation.customer_seen_at`, set by the chat's consumer) for
`SUPPORT_REPLY_EMAIL_AFTER_SECONDS` is emailed to them, together with the others unseen then, once. A
customer with an account gets it at their account's address, a visitor of the widget at the address
they left in it; a visitor who left none is answered in the inbox only (docs/inbox.md).

The sweep runs every minute (Celery beat; in the embedded set-up, a thread of `manage.py serve`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.chat import handoffs
from apps.chat.models import Conversation, Message
from apps.chat.notifications import email_connection
from apps.chat.payloads import agent_name, company_name
from apps.inbox.selectors import widget_visitor
from apps.widget.models import SiteConversation

logger = logging.getLogger(__name__)

# Agents' messages older than this are never emailed: a first deploy, or a sweep that did not run for a
# long time, does not send customers their history.
EMAIL_WINDOW = dt.timedelta(days=7)


@dataclass(frozen=True)
class ReplyAddress:
    """Where a customer is emailed, and the link that takes them back to the conversation."""

    email: str
    link: str


def reply_address(conversation: Conversation) -> ReplyAddress | None:
    """Where the customer is emailed and the link back: a widget visitor's left address and their site;
    a customer's account address and the chat page, or the site's page when they chatted in its widget
    signed in. None when there is no address (a visitor who left none, an account without one)."""
    user: AbstractBaseUser = conversation.user
    visitor = widget_visitor(user)
    if visitor is not None:  # an anonymous visitor of the widget: no account, only what they left
        return ReplyAddress(visitor.email, visitor.site.origin) if visitor.email else None
    email = getattr(user, "email", "")
    if not user.is_active or not email:
        return None
    held = SiteConversation.objects.select_related("site").filter(conversation=conversation).first()
    link = held.site.origin if held is not None else f"{settings.SUPPORT_SITE_URL}/?c={conversation.pk}"
    return ReplyAddress(email, link)


def _unseen(conversation: Conversation) -> list[Message]:
    since = timezone.now() - EMAIL_WINDOW
    marks = [m for m in (conversation.customer_seen_at, conversation.replies_emailed_through) if m is not None]
    if marks:
        since = max(since, *marks)
    return list(
        conversation.messages.filter(role=Message.Role.AGENT, created_at__gt=since)
        .select_related("author")
        .order_by("created_at", "pk")
    )


def _candidates(*, now: dt.datetime, after: dt.timedelta) -> list[object]:
    """Conversations with an agent's message at least `after` old, unseen and not emailed yet."""
    unseen = Q(conversation__customer_seen_at__isnull=True) | Q(created_at__gt=F("conversation__customer_seen_at"))
    not_emailed = Q(conversation__replies_emailed_through__isnull=True) | Q(
        created_at__gt=F("conversation__replies_emailed_through")
    )
    return list(
        Message.objects.filter(role=Message.Role.AGENT, created_at__gt=now - EMAIL_WINDOW, created_at__lte=now - after)
        .filter(unseen, not_emailed)
        .values_list("conversation_id", flat=True)
        .distinct()
    )


def _author(message: Message) -> str:
    return agent_name(message.author) if message.author_id else "Support"


def _email(conversation: Conversation, messages: list[Message], address: ReplyAddress) -> EmailMessage:
    names = list(dict.fromkeys(_author(m) for m in messages))
    company = company_name()
    topic = f' about "{conversation.title}"' if conversation.title else ""
    body = (
        f"Hello,\n\n{' and '.join(names)} from {company} answered you{topic}:\n\n"
        + "\n\n".join(f"{_author(m)}:\n{m.text}" for m in messages)
        + f"\n\nContinue the conversation in the chat: {address.link}\n\n"
        "You get this email because you were not in the chat when the answer came.\n"
    )
    return EmailMessage(
        subject=f"{names[0]} from {company} answered you",
        body=body,
        from_email=settings.SUPPORT_EMAIL_ADDRESS,
        to=[address.email],
        reply_to=[settings.SUPPORT_EMAIL_ADDRESS],
        connection=email_connection(settings.SUPPORT_EMAIL_URL),
    )


def conversation_unseen_replies_email(*, conversation_id: object) -> bool:
    """Email the customer the agents' messages of one conversation they have not seen. Returns whether
    an email went.

    The conversation is locked while it is emailed (another worker's sweep skips it) and marked only
    once the email is handed to the mail server: an email that fails is tried again at the next sweep.
    """
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("user")
            .filter(pk=conversation_id)
            .first()
        )
        if conversation is None:
            return False
        messages = _unseen(conversation)
        address = reply_address(conversation)
        if not messages or address is None:
            return False
        _email(conversation, messages, address).send()
        handoffs.conversation_replies_emailed(conversation_id=conversation.pk, through=messages[-1].created_at)
    logger.info("emailed %d unseen agent message(s) of %s", len(messages), conversation.pk)
    return True


def unseen_replies_email(*, now: dt.datetime | None = None) -> int:
    """Email every customer who has not seen an agent's message for `SUPPORT_REPLY_EMAIL_AFTER_SECONDS`.
    Returns how many emails went. Safe twice, and from two workers at once."""
    after = settings.SUPPORT_REPLY_EMAIL_AFTER_SECONDS
    if after <= 0:
        return 0
    sent = 0
    for conversation_id in _candidates(now=now or timezone.now(), after=dt.timedelta(seconds=after)):
        try:
            sent += conversation_unseen_replies_email(conversation_id=conversation_id)
        except Exception:  # one mail server error must not keep the others from their answers
            logger.exception("could not email the unseen replies of %s; next sweep tries again", conversation_id)
    return sent
