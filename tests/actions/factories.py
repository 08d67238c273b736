"""Test data for the actions tests: customers with invoices, tickets and a paid period."""

from datetime import date

import factory

from apps.accounts.models import CustomerAccount, Invoice, SupportTicket
from tests.chat.factories import UserFactory


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerAccount
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory)
    plan = "pro"
    company = factory.Sequence(lambda n: f"Company {n}")
    current_period_end = date(2026, 12, 31)


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    account = factory.SubFactory(AccountFactory)
    number = factory.Sequence(lambda n: f"INV-T-{n:05d}")
    amount_cents = 4_900
    status = Invoice.Status.PAID
    issued_on = factory.Sequence(lambda n: date(2026, 1 + n % 11, 5))
    due_on = factory.LazyAttribute(lambda invoice: invoice.issued_on.replace(day=19))


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SupportTicket

    user = factory.SubFactory(UserFactory)
    subject = "Uploads are paused"
