"""Seeding of the demo end users and their Acme account data (idempotent).

Demo credentials only exist once `seed_demo` has run; nothing here runs in production on its own.
"""

from datetime import date

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from apps.accounts.demo_content import DEMO_ACCOUNTS, DemoAccount
from apps.accounts.models import CustomerAccount, Invoice, SupportTicket

DEMO_PASSWORD = "demo-password"
DEMO_ADMIN_USERNAME = "admin"
DEMO_ADMIN_EMAIL = "admin@acme.example"
# The end of every demo account's current billing period (set once, when the account is created).
DEMO_PERIOD_END = "2026-12-31"


def _user_upsert(*, username: str, email: str, full_name: str = "", staff: bool = False) -> AbstractUser:
    """Create the user once; later runs leave a changed password or profile alone."""
    first, _, last = full_name.partition(" ")
    user, created = get_user_model().objects.get_or_create(
        username=username,
        defaults={"email": email, "first_name": first, "last_name": last, "is_staff": staff, "is_superuser": staff},
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


def _account_upsert(demo: DemoAccount) -> CustomerAccount:
    user = _user_upsert(username=demo.username, email=demo.email, full_name=demo.full_name)
    account, _ = CustomerAccount.objects.update_or_create(
        user=user,
        defaults={
            "plan": demo.plan,
            "billing_status": demo.billing_status,
            "language": demo.language,
            "company": demo.company,
            "seats": demo.seats,
        },
        create_defaults={
            "plan": demo.plan,
            "billing_status": demo.billing_status,
            "language": demo.language,
            "company": demo.company,
            "seats": demo.seats,
            "current_period_end": date.fromisoformat(DEMO_PERIOD_END),
        },
    )
    for invoice in demo.invoices:
        Invoice.objects.update_or_create(
            number=invoice.number,
            defaults={
                "account": account,
                "amount_cents": invoice.amount_cents,
                "currency": invoice.currency,
                "status": invoice.status,
                "issued_on": date.fromisoformat(invoice.issued_on),
                "due_on": date.fromisoformat(invoice.due_on),
            },
        )
    for ticket in demo.open_tickets:
        SupportTicket.objects.get_or_create(
            user=user,
            subject=ticket.subject,
            source=SupportTicket.Source.MANUAL,
            defaults={"status": ticket.status},
        )
    return account


@transaction.atomic
def demo_accounts_seed() -> list[CustomerAccount]:
    """The admin user and the three demo customers (alice free, bob pro, carol enterprise)."""
    _user_upsert(username=DEMO_ADMIN_USERNAME, email=DEMO_ADMIN_EMAIL, full_name="Acme Admin", staff=True)
    return [_account_upsert(demo) for demo in DEMO_ACCOUNTS]


@transaction.atomic
def demo_transcripts_seed() -> int:
    """A few days of sample conversations for the nightly classification and report; returns how many were new.

    The demo is the one place allowed to reach across apps: it stages data for all of them.
    """
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.demo_content import load_transcripts
    from apps.chat.models import Conversation, Message
    from apps.prompts.selectors import prompt_version_for_conversation

    created = 0
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=[a.username for a in DEMO_ACCOUNTS])}
    for index, transcript in enumerate(load_transcripts()):
        user = users[transcript["username"]]
        if Conversation.objects.filter(user=user, title=transcript["title"]).exists():
            continue
        started = now - timedelta(days=transcript["days_ago"], hours=index % 8)
        conversation = Conversation.objects.create(user=user, title=transcript["title"])
        version = prompt_version_for_conversation(slug="support-assistant", conversation_key=str(conversation.pk))
        for position, turn in enumerate(transcript["turns"]):
            at = started + timedelta(minutes=position)
            message = Message.objects.create(
                conversation=conversation,
                role=turn["role"],
                text=turn["text"],
                status="complete",
                prompt_version=version.version if turn["role"] == "assistant" else "",
            )
            Message.objects.filter(pk=message.pk).update(created_at=at, completed_at=at)
        last = started + timedelta(minutes=len(transcript["turns"]))
        Conversation.objects.filter(pk=conversation.pk).update(
            prompt_version=version, created_at=started, updated_at=last
        )
        created += 1
    return created
