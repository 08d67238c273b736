"""Conversations between a customer and the assistant, their messages, and the customer's feedback."""

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """One chat thread of one user. The UUID key is safe to show in URLs and websocket query strings."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        NEEDS_HUMAN = "needs_human", "Needs a human"
        WITH_AGENT = "with_agent", "With a support agent"
        CLOSED = "closed", "Closed"

    class HandoffSource(models.TextChoices):
        NONE = "", "None"
        USER = "user", "Asked by the customer"
        ASSISTANT = "assistant", "Asked by the assistant"
        DEGRADED = "degraded", "Assistant unavailable"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=120, blank=True, help_text="The start of the first question.")
    status = models.CharField(
        max_length=20,
        choices=Status.choices,
        default=Status.OPEN,
        help_text="needs_human: waiting for an agent (handoff or degraded answer); with_agent: an agent owns it.",
    )
    assigned_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        help_text="The support agent who owns the conversation; the assistant does not answer meanwhile.",
    )
    handoff_source = models.CharField(
        max_length=10, choices=HandoffSource.choices, blank=True, default="", help_text="Who asked for a human."
    )
    handoff_reason = models.CharField(max_length=300, blank=True, help_text="Why a human is needed (agents see it).")
    handoff_at = models.DateTimeField(null=True, blank=True, help_text="Since when the conversation waits for a human.")
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="conversations",
        help_text="Assigned on the first answer and kept (sticky A/B assignment).",
    )
    summary = models.TextField(blank=True, help_text="Compressed older history, written by the gateway.")
    summary_turns = models.PositiveIntegerField(
        default=0, help_text="How many of the oldest history turns `summary` covers."
    )
    customer_seen_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the customer last had the conversation in front of them with an agent's message: the "
        "transcript opened, or a message shown live. Agents' messages after it are unseen.",
    )
    replies_emailed_through = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The time of the newest agent's message emailed to the customer because they had not seen it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last activity.")

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["user", "-updated_at"]),
            models.Index(fields=["status", "updated_at"]),
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)

    @property
    def humans_answer(self) -> bool:
        """Whether the customer's next message goes to the support team instead of the assistant: an
        agent owns the conversation, or a human was asked for (a degraded answer alone keeps the
        assistant answering: the upstream trouble is often over by the next question)."""
        if self.status == self.Status.WITH_AGENT:
            return True
        return self.status == self.Status.NEEDS_HUMAN and self.handoff_source in (
            self.HandoffSource.USER,
            self.HandoffSource.ASSISTANT,
        )


class Message(models.Model):
    """One turn. Assistant rows are created as "streaming" and finalised with exactly what the user saw."""

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        AGENT = "agent", "Support agent"

    class Status(models.TextChoices):
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        INCOMPLETE = "incomplete", "Incomplete"
        FAILED = "failed", "Failed"
        DEGRADED = "degraded", "Degraded (apology, ticket opened)"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    client_id = models.UUIDField(
        null=True, blank=True, help_text="The client's id for a user message; a resend never duplicates it."
    )
    reply_to = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="replies",
        help_text="For an assistant message: the user message it answers.",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chat_messages_written",
        help_text="For an agent message: the support agent who wrote it.",
    )
    action = models.OneToOneField(
        "actions.ActionRecord",
        on_delete=models.CASCADE,  # erased with its record (the customer's account, user)
        null=True,
        blank=True,
        related_name="outcome_message",
        help_text=(
            "For the assistant's line saying what came of a confirmation card (confirmed and done, failed, "
            "cancelled): the decided action. Not written by the model; part of the history it reads."
        ),
    )
    model = models.CharField(max_length=80, blank=True, help_text="Model that produced the final text.")
    prompt_version = models.CharField(max_length=20, blank=True, help_text='Prompt version "x.y.z" used.')
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to the first delta sent.")
    latency_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to the terminal frame.")
    citations = models.JSONField(
        default=list,
        blank=True,
        help_text="What the answer cited: [{title, url, cited_text, article_id}], in the order cited.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "client_id"], name="chat_message_unique_client_id"),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.status != self.Status.STREAMING


class Feedback(models.Model):
    """A thumbs up/down on one assistant message; the user may change it."""

    class Rating(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_feedback")
    rating = models.CharField(max_length=4, choices=Rating.choices)
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["rating", "created_at"])]

    def __str__(self) -> str:
        return f"{self.rating} on #{self.message_id}"
