"""Email to the support address when a conversation waits for a person and no agent is online."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from apps.chat.models import Conversation
from apps.chat.selectors import conversation_transcript
from apps.staffing.selectors import agents_online_count

logger = logging.getLogger(__name__)


def email_connection(url: str) -> BaseEmailBackend:
    """A mail backend from one URL: `console://`, `locmem://`, or `smtp://user:password@host:port?tls=true`
    (`smtps://` for implicit TLS). Raises ValueError for another scheme."""
    parts = urlsplit(url)
    if parts.scheme == "console":
        return get_connection("django.core.mail.backends.console.EmailBackend")
    if parts.scheme == "locmem":
        return get_connection("django.core.mail.backends.locmem.EmailBackend")
    if parts.scheme in ("smtp", "smtps"):
        query = parse_qs(parts.query)
        return get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host=parts.hostname or "localhost",
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            use_tls=query.get("tls", ["false"])[0].lower() in ("1", "true", "yes"),
            use_ssl=parts.scheme == "smtps",
            timeout=10,
        )
    raise ValueError(f"SUPPORT_EMAIL_URL: unsupported scheme {parts.scheme!r}")


def handoff_email_if_nobody_online(*, conversation_id: str) -> bool:
    """Send the handoff to the support address when no agent is online. Returns whether it was sent.
    Safe twice: a conversation no longer waiting (claimed, handed back) is not emailed."""
    conversation = Conversation.objects.select_related("user").filter(pk=conversation_id).first()
    if conversation is None or conversation.status != Conversation.Status.NEEDS_HUMAN:
        return False
    if agents_online_count() > 0:
        return False
    reason = conversation.handoff_reason or conversation.get_handoff_source_display()
    message = EmailMessage(
        subject=f"Customer waiting: {conversation.title or conversation.pk}",
        body=f"Reason: {reason}\n\n{conversation_transcript(conversation)}\n\n"
        f"Answer in the inbox: {settings.SUPPORT_SITE_URL}/inbox/c/{conversation.pk}/",
        to=[settings.SUPPORT_EMAIL_ADDRESS],
        connection=email_connection(settings.SUPPORT_EMAIL_URL),
    )
    message.send()
    return True
