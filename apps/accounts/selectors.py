"""Reads of customer data. The account context is built here, server-side, for one user only."""

import contextlib
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.utils.crypto import constant_time_compare

from apps.accounts.models import CustomerAccount, Invoice, PlanTier, SupportTicket
from apps.core.cache import CACHE_ERRORS

ACCOUNT_CONTEXT_TAG = "account_context"
RECENT_INVOICES = 3


@dataclass(frozen=True)
class AccountContext:
    """What the assistant may know about the person it is talking to; rendered into the user turn."""

    username: str
    plan_tier: str
    billing_status: str
    language: str
    company: str
    seats: int
    invoices: tuple[str, ...]
    open_tickets: tuple[str, ...]

    def render(self) -> str:
        """Deterministic, delimited text. Every value is neutralised so it cannot close the tag."""
        lines = [
            f"customer: {neutralise_tags(self.username)}",
            f"plan: {self.plan_tier}",
            f"billing_status: {self.billing_status}",
            f"language: {self.language}",
            f"company: {neutralise_tags(self.company) or '-'}",
            f"seats: {self.seats}",
            "recent_invoices:",
            *(f"- {neutralise_tags(line)}" for line in self.invoices or ("none",)),
            "open_tickets:",
            *(f"- {neutralise_tags(line)}" for line in self.open_tickets or ("none",)),
        ]
        body = "\n".join(lines)
        return f"<{ACCOUNT_CONTEXT_TAG}>\n{body}\n</{ACCOUNT_CONTEXT_TAG}>"


def neutralise_tags(text: str) -> str:
    """Stop text from opening or closing our delimiter tags (or any XML-ish tag) by escaping angle brackets.

    Applied to user-typed text and to database values alike: only the server writes real tags.
    """
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _format_invoice(invoice: Invoice) -> str:
    amount = f"{invoice.amount_cents / 100:.2f} {invoice.currency}"
    return f"{invoice.number}: {amount}, {invoice.status}, issued {invoice.issued_on}, due {invoice.due_on}"


def account_context_cache_key(user_id: object) -> str:
    return f"accounts:context:{user_id}"


def account_context_for_user(user: AbstractBaseUser) -> AccountContext:
    """The account context of `user` — the authenticated user, never one named by client input.

    Cached: it is read for every chat question, and its three queries were a third of the work done
    before a question's upstream call could start. Every save or delete of what it is built from drops
    the entry (apps.accounts.signals); `ACCOUNT_CONTEXT_CACHE_SECONDS` bounds how long a write that
    bypasses model signals (a queryset `update()`) can go unseen.
    """
    key = account_context_cache_key(user.pk)
    try:
        context = cache.get(key)
    except CACHE_ERRORS:  # the cache is down: read the database, as without a cache
        return _account_context_build(user)
    if context is None:
        context = _account_context_build(user)
        with contextlib.suppress(*CACHE_ERRORS):
            cache.set(key, context, settings.ACCOUNT_CONTEXT_CACHE_SECONDS)
    return context


def _account_context_build(user: AbstractBaseUser) -> AccountContext:
    account = CustomerAccount.objects.filter(user=user).first()
    tickets = SupportTicket.objects.filter(user=user).exclude(status=SupportTicket.Status.CLOSED)[:5]
    open_tickets = tuple(f"#{t.pk} {t.subject} ({t.status}, opened {t.created_at:%Y-%m-%d})" for t in tickets)
    if account is None:
        return AccountContext(
            username=user.get_username(),
            plan_tier=PlanTier.FREE,
            billing_status="unknown",
            language="en",
            company="",
            seats=1,
            invoices=(),
            open_tickets=open_tickets,
        )
    invoices = tuple(_format_invoice(i) for i in account.invoices.all()[:RECENT_INVOICES])
    return AccountContext(
        username=user.get_username(),
        plan_tier=account.plan,
        billing_status=account.billing_status,
        language=account.language,
        company=account.company,
        seats=account.seats,
        invoices=invoices,
        open_tickets=open_tickets,
    )


def session_logs_in(session_key: str, user: AbstractBaseUser) -> bool:
    """Whether the login session `session_key` still logs in `user`: it exists, has not expired, and
    Django's `auth.get_user` would accept it for a request — the user re-read through their backend (a
    deactivated one is refused) and the session's hash checked against the current password's.

    For connections that outlive a request (the chat websocket).
    """
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    backend_path = data.get(BACKEND_SESSION_KEY)
    if str(data.get(SESSION_KEY)) != str(user.pk) or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return False
    current = load_backend(backend_path).get_user(user.pk)
    if current is None:
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), current.get_session_auth_hash())
