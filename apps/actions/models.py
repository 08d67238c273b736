"""The audit of every tool call the assistant made for a customer, and of every customer decision."""

from django.conf import settings
from django.db import models

from apps.accounts.models import CustomerAccount


class ActionRecord(models.Model):
    """One tool call: who it acted for, what the model asked, what happened. Written before anything runs."""

    class Risk(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        CONFIRM = "confirm", "Write after the customer confirms"

    class Status(models.TextChoices):
        AWAITING_CONFIRMATION = "awaiting_confirmation", "Awaiting the customer's confirmation"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (nothing changed)"
        REJECTED = "rejected", "Rejected (invalid arguments)"
        DECLINED = "declined", "Cancelled by the customer"

    class Decision(models.TextChoices):
        NONE = "", "—"
        CONFIRMED = "confirmed", "Confirmed"
        CANCELLED = "cancelled", "Cancelled"

    account = models.ForeignKey(
        CustomerAccount,
        on_delete=models.CASCADE,
        related_name="action_records",
        help_text="The account the tool acted on: the logged-in customer's, never one from the arguments.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", help_text="The customer."
    )
    conversation_id = models.CharField(max_length=64, blank=True, db_index=True)
    reply_id = models.BigIntegerField(
        null=True, blank=True, help_text="The assistant message whose answer made the call (its transcript shows it)."
    )
    tool = models.CharField(max_length=64, help_text="The tool's registry name.")
    risk = models.CharField(max_length=10, choices=Risk.choices)
    arguments = models.JSONField(default=dict, help_text="The input the model gave, as received.")
    idempotency_key = models.CharField(
        max_length=128, unique=True, help_text="One record per tool call: a repeated call returns this result."
    )
    tool_use_id = models.CharField(max_length=64, blank=True, help_text="The model's tool_use block id.")
    status = models.CharField(max_length=24, choices=Status.choices)
    summary = models.TextField(blank=True, help_text="What the action does, as shown on the confirmation card.")
    result = models.JSONField(default=dict, blank=True, help_text="What the tool returned (the tool_result).")
    error = models.TextField(blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.NONE, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"]), models.Index(fields=["tool", "status"])]

    def __str__(self) -> str:
        return f"{self.tool} for {self.user} ({self.status})"
