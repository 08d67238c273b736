"""What only the support team sees of a conversation: internal notes."""

from django.conf import settings
from django.db import models

# The group whose members work at /inbox/ (created by a data migration; see docs/inbox.md).
AGENTS_GROUP = "Support agents"


class InternalNote(models.Model):
    """A note agents leave on a conversation for each other. Kept apart from the chat's messages so that
    it can never reach the customer's transcript or the model's history."""

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="internal_notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="internal_notes",
        help_text="The agent who wrote it.",
    )
    text = models.TextField(help_text="Plain text; shown to agents only.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"note #{self.pk}"
