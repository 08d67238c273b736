"""Writes of customer data."""

from django.contrib.auth.models import AbstractBaseUser

from apps.accounts.models import SupportTicket


def ticket_open(
    *,
    user: AbstractBaseUser,
    subject: str,
    body: str,
    source: str,
    conversation_id: str = "",
) -> SupportTicket:
    """Open a ticket for Acme's human team. One open ticket per conversation and source: reopening is a no-op."""
    if conversation_id:
        existing = SupportTicket.objects.filter(
            user=user, conversation_id=conversation_id, source=source, status=SupportTicket.Status.OPEN
        ).first()
        if existing is not None:
            return existing
    return SupportTicket.objects.create(
        user=user, subject=subject[:200], body=body, source=source, conversation_id=conversation_id
    )
