"""Acme's own customer data: the source of the assistant's account context."""

from django.conf import settings
from django.db import models


class PlanTier(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"
    ENTERPRISE = "enterprise", "Enterprise"


class CustomerAccount(models.Model):
    """One end user's commercial relationship with Acme."""

    class BillingStatus(models.TextChoices):
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_account")
    plan = models.CharField(
        max_length=20, choices=PlanTier.choices, default=PlanTier.FREE, help_text="Drives model routing."
    )
    billing_status = models.CharField(max_length=20, choices=BillingStatus.choices, default=BillingStatus.ACTIVE)
    language = models.CharField(max_length=8, default="en", help_text="ISO 639-1 preferred language.")
    company = models.CharField(max_length=200, blank=True)
    seats = models.PositiveIntegerField(default=1)
    billing_email = models.EmailField(blank=True, help_text="Where invoices are sent; blank = the login email.")
    current_period_end = models.DateField(
        null=True, blank=True, help_text="When the paid period ends (renewal or, if cancelled, the end of service)."
    )
    cancel_at_period_end = models.BooleanField(
        default=False, help_text="Cancelled by the customer: service continues until current_period_end."
    )

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.plan})"

    @property
    def invoice_email(self) -> str:
        """Where invoices go: the billing email, else the login email."""
        return self.billing_email or self.user.email


class Invoice(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", "Paid"
        OPEN = "open", "Open"
        VOID = "void", "Void"

    account = models.ForeignKey(CustomerAccount, on_delete=models.CASCADE, related_name="invoices")
    number = models.CharField(max_length=40, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=10, choices=Status.choices)
    issued_on = models.DateField()
    due_on = models.DateField()

    class Meta:
        ordering = ["-issued_on", "-id"]
        indexes = [models.Index(fields=["account", "-issued_on"])]

    def __str__(self) -> str:
        return self.number


class SupportTicket(models.Model):
    """A case for Acme's human support team (handoff, degraded answers, or opened elsewhere)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        CLOSED = "closed", "Closed"

    class Source(models.TextChoices):
        MANUAL = "manual", "Opened by staff"
        HANDOFF = "handoff", "User asked for a human"
        DEGRADED = "degraded", "Assistant unavailable"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="support_tickets")
    conversation_id = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Chat conversation this ticket came from, if any."
    )
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="Transcript or description for the human agent.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"
