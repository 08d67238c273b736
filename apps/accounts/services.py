"""Writes of customer data."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction

from apps.accounts.models import CustomerAccount, Invoice, SupportTicket
from apps.core.exceptions import ApplicationError


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


def invoice_email_send(*, invoice: Invoice) -> str:
    """Email `invoice` to its account's invoice address; returns that address.

    The address is the account's own (billing email, else login email): never one given by the caller.
    """
    account = invoice.account
    recipient = account.invoice_email
    amount = f"{invoice.amount_cents / 100:.2f} {invoice.currency}"
    holder = account.company or account.user.get_username()
    body = (
        f"Hello,\n\nAs requested, here is invoice {invoice.number} for {holder}.\n\n"
        f"Amount: {amount}\nStatus: {invoice.status}\nIssued: {invoice.issued_on}\nDue: {invoice.due_on}\n\n"
        "— Acme billing"
    )
    send_mail(f"Your Acme invoice {invoice.number}", body, None, [recipient])
    return recipient


@transaction.atomic
def account_billing_email_update(*, account: CustomerAccount, email: str) -> CustomerAccount:
    """Set where invoices go. Raises ApplicationError for an invalid address."""
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError(f"{email!r} is not a valid email address.", code="invalid_email") from None
    account = CustomerAccount.objects.select_for_update().get(pk=account.pk)
    account.billing_email = email
    account.save(update_fields=["billing_email"])
    return account


@transaction.atomic
def subscription_cancel_at_period_end(*, account: CustomerAccount) -> CustomerAccount:
    """Cancel at the end of the paid period: service continues until then. Cancelling twice changes nothing.

    Raises ApplicationError when the account is already canceled or has no paid period.
    """
    account = CustomerAccount.objects.select_for_update().get(pk=account.pk)
    if account.billing_status == CustomerAccount.BillingStatus.CANCELED:
        raise ApplicationError("The subscription is already canceled.", code="already_canceled")
    if account.current_period_end is None:
        raise ApplicationError("The account has no paid period to cancel.", code="no_subscription")
    if not account.cancel_at_period_end:
        account.cancel_at_period_end = True
        account.save(update_fields=["cancel_at_period_end"])
    return account
