"""Reads of customer data. The account context is built here, server-side, for one user only."""

import contextlib
import json
import re
from dataclasses import dataclass
from datetime import date
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Q
from django.utils.crypto import constant_time_compare

from apps.accounts.models import CustomerAccount, Invoice, PlanTier, SupportTicket
from apps.core.cache import CACHE_ERRORS
from apps.core.exceptions import NotFound

ACCOUNT_CONTEXT_TAG = "account_context"
VISITOR_CONTEXT_TAG = "visitor_context"
RECENT_INVOICES = 3
# The key a customer-written value is wrapped in, so the model can tell it from a fact of ours.
CUSTOMER_TEXT = "customer_text"
# Characters JSON leaves as they are that would still break the rendering: angle brackets (our
# delimiter tags) and the line breaks `str.splitlines` and many readers honour besides \n and \r.
_JSON_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_UNSAFE_RE = re.compile("[" + "".join(_JSON_UNSAFE) + "]")


@dataclass(frozen=True)
class InvoiceFact:
    number: str
    amount_cents: int
    currency: str
    status: str
    issued_on: date
    due_on: date

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "amount": f"{self.amount_cents / 100:.2f}",
            "currency": self.currency,
            "status": self.status,
            "issued_on": self.issued_on.isoformat(),
            "due_on": self.due_on.isoformat(),
        }


@dataclass(frozen=True)
class TicketFact:
    id: int
    subject: str  # written by the customer (a handoff's subject quotes the conversation's title)
    status: str
    opened_on: date

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "subject": customer_text(self.subject),
            "status": self.status,
            "opened_on": self.opened_on.isoformat(),
        }


@dataclass(frozen=True)
class AccountContext:
    """What the assistant may know about the person it is talking to; rendered into the user turn."""

    username: str
    plan_tier: str
    billing_status: str
    language: str
    company: str
    seats: int
    invoices: tuple[InvoiceFact, ...]
    open_tickets: tuple[TicketFact, ...]
    # No account to speak of: an inactive user, e.g. an anonymous visitor chatting in the widget on
    # another site, gets public answers only; it renders as nothing.
    anonymous: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "customer": customer_text(self.username),
            "plan": self.plan_tier,
            "billing_status": self.billing_status,
            "language": self.language,
            "company": customer_text(self.company) if self.company else None,
            "seats": self.seats,
            "recent_invoices": [invoice.as_json() for invoice in self.invoices],
            "open_tickets": [ticket.as_json() for ticket in self.open_tickets],
        }

    def render(self) -> str:
        """One JSON document between our delimiter tags, one top-level field a line.

        Rendered from typed values, never by pasting text into lines: every string is JSON-quoted, so a
        value cannot start a line, a field or a tag of its own whatever it holds (newlines, quotes, angle
        brackets, U+2028/U+2029 all arrive escaped). Values a customer wrote are wrapped in
        `{"customer_text": ...}` so the model can tell them from our facts (business rules, point 2).
        """
        if self.anonymous:
            return ""
        fields = ",\n".join(f" {_json(key)}: {_json(value)}" for key, value in self.as_json().items())
        return f"<{ACCOUNT_CONTEXT_TAG}>\n{{\n{fields}\n}}\n</{ACCOUNT_CONTEXT_TAG}>"


def visitor_context_render(*, language: str) -> str:
    """What the assistant may know about an anonymous visitor (no account): the language of their
    browser, a code the caller has checked against the languages the assistant serves. In the user
    turn, like an account context; the system blocks stay the same for every visitor."""
    facts = {"visitor": "anonymous", "language": language}
    fields = ",\n".join(f" {_json(key)}: {_json(value)}" for key, value in facts.items())
    return f"<{VISITOR_CONTEXT_TAG}>\n{{\n{fields}\n}}\n</{VISITOR_CONTEXT_TAG}>"


def customer_text(value: str) -> dict[str, str]:
    """A value the customer wrote (or could have), marked as such in the account context."""
    return {CUSTOMER_TEXT: value}


def _json(value: object) -> str:
    """Compact JSON that also escapes what JSON allows raw but our rendering must not carry raw."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return _JSON_UNSAFE_RE.sub(lambda match: _JSON_UNSAFE[match.group(0)], text)


def neutralise_tags(text: str) -> str:
    """Stop text from opening or closing our delimiter tags (or any XML-ish tag) by escaping angle brackets.

    Applied to user-typed text and to database values alike: only the server writes real tags.
    """
    return text.replace("<", "&lt;").replace(">", "&gt;")


def account_context_cache_key(user_id: object) -> str:
    # v2: the entry's types changed (typed invoices and tickets); an old pickle must not be read as one.
    return f"accounts:context:v2:{user_id}"


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
    if not user.is_active:
        return AccountContext(
            username="",
            plan_tier=PlanTier.FREE,
            billing_status="unknown",
            language="en",
            company="",
            seats=1,
            invoices=(),
            open_tickets=(),
            anonymous=True,
        )
    account = CustomerAccount.objects.filter(user=user).first()
    tickets = SupportTicket.objects.filter(user=user).exclude(status=SupportTicket.Status.CLOSED)[:5]
    open_tickets = tuple(
        TicketFact(id=t.pk, subject=t.subject, status=t.status, opened_on=t.created_at.date()) for t in tickets
    )
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
    invoices = tuple(
        InvoiceFact(
            number=i.number,
            amount_cents=i.amount_cents,
            currency=i.currency,
            status=i.status,
            issued_on=i.issued_on,
            due_on=i.due_on,
        )
        for i in account.invoices.all()[:RECENT_INVOICES]
    )
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


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    where: str


def demo_logins_list() -> list[DemoLogin]:
    """The demo accounts `seed_demo` created that can still log in, for the login page; empty on a site
    without demo data. A user counts only with the seeded username *and* email, so a real user who
    happens to be called `admin` is never advertised with the demo password."""
    from apps.accounts.demo import DEMO_ADMIN_EMAIL, DEMO_ADMIN_USERNAME
    from apps.accounts.demo_content import DEMO_ACCOUNTS

    seeded = {DEMO_ADMIN_USERNAME: (DEMO_ADMIN_EMAIL, "staff: prompts, reports, metrics", "/admin/")}
    # The support agent (apps.inbox seeds it; named here so the login page lists it with the others).
    seeded["dana"] = ("dana@acme.example", "support agent", "/inbox/")
    for demo in DEMO_ACCOUNTS:
        seeded[demo.username] = (demo.email, f"customer, {demo.plan.capitalize()} plan", "/")
    present = get_user_model().objects.filter(username__in=seeded, is_active=True).values_list("username", "email")
    found = {username for username, email in present if seeded[username][0] == email}
    return [
        DemoLogin(username=name, role=role, where=where) for name, (_, role, where) in seeded.items() if name in found
    ]


@dataclass(frozen=True)
class CustomerIdentifiers:
    """What names a real customer, lower-cased: text shared by every request must hold none of it."""

    usernames: frozenset[str]
    emails: frozenset[str]
    invoice_numbers: frozenset[str]


def customer_identifiers() -> CustomerIdentifiers:
    """Usernames and emails of every customer (a user with an account, or any non-staff user) and every
    invoice number. Staff are left out: "admin" is a word prompts use, not a customer."""
    customers = get_user_model().objects.filter(Q(customer_account__isnull=False) | Q(is_staff=False))
    usernames: set[str] = set()
    emails: set[str] = set()
    for username, email in customers.values_list("username", "email").iterator():
        usernames.add(username.lower())
        if email:
            emails.add(email.lower())
    numbers = Invoice.objects.values_list("number", flat=True).iterator()
    return CustomerIdentifiers(
        usernames=frozenset(usernames), emails=frozenset(emails), invoice_numbers=frozenset(n.lower() for n in numbers)
    )


# --------------------------------------------------------------------------------------------------
# One access selector per object: the account (or user) is always the caller's, never client input.


def account_for_user(user: AbstractBaseUser) -> CustomerAccount:
    """The customer account of `user`. Raises NotFound when the user has none (staff, new sign-ups)."""
    account = CustomerAccount.objects.select_related("user").filter(user=user).first()
    if account is None:
        raise NotFound("You have no customer account.")
    return account


def invoices_for_account(account: CustomerAccount, *, limit: int = 12) -> list[Invoice]:
    """The account's invoices, newest first."""
    return list(account.invoices.all()[:limit])


def invoice_get_for_account(account: CustomerAccount, number: str) -> Invoice:
    """The invoice `number` of this account. Raises NotFound for any other account's invoice."""
    invoice = Invoice.objects.filter(account=account, number=number.strip().upper()).first()
    if invoice is None:
        raise NotFound(f"No invoice {number!r} on your account.")
    return invoice


def invoice_latest_for_account(account: CustomerAccount) -> Invoice:
    """The account's newest invoice. Raises NotFound when it has none."""
    invoice = account.invoices.first()
    if invoice is None:
        raise NotFound("Your account has no invoices yet.")
    return invoice


def tickets_for_user(user: AbstractBaseUser, *, limit: int = 10) -> list[SupportTicket]:
    """The user's support tickets, newest first."""
    return list(SupportTicket.objects.filter(user=user)[:limit])


def ticket_get_for_user(user: AbstractBaseUser, ticket_id: int) -> SupportTicket:
    """The ticket `ticket_id` of this user. Raises NotFound for anyone else's."""
    ticket = SupportTicket.objects.filter(user=user, pk=ticket_id).first()
    if ticket is None:
        raise NotFound(f"No ticket #{ticket_id} on your account.")
    return ticket
