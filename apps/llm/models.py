"""The LLM call log and the admin-editable routing rules."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models


class TaskType(models.TextChoices):
    CHAT = "chat", "Chat answer"
    CLASSIFICATION = "classification", "Classification"
    SUMMARISATION = "summarisation", "History summary"
    # Offline evaluation of prompt versions (apps.evaluations): kept out of live traffic metrics.
    EVALUATION = "evaluation", "Evaluation answer"
    GRADING = "grading", "Evaluation grading"
    # "Suggest a reply" in the agents' inbox: a draft a person edits before sending (apps/inbox/copilot.py).
    AGENT_DRAFT = "agent_draft", "Agent reply draft"
    # The nightly drafting of knowledge-gap articles (apps/triage/gap_drafts.py): a person reviews each one.
    ARTICLE_DRAFT = "article_draft", "Knowledge-gap article draft"


class ModelTier(models.TextChoices):
    HAIKU = "haiku", "Haiku (fast, cheapest)"
    SONNET = "sonnet", "Sonnet (balanced)"
    OPUS = "opus", "Opus (most capable)"


class LLMCall(models.Model):
    """One upstream attempt (a retry or a fallback is another row). Never holds secrets or prompt text."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

    created_at = models.DateTimeField(auto_now_add=True, help_text="When the attempt started.")
    task_type = models.CharField(max_length=20, choices=TaskType.choices, help_text="What the call was for.")
    conversation_id = models.CharField(
        max_length=64, blank=True, default="", help_text="The chat conversation (UUID) it served, if any."
    )
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The assistant message being produced.")
    prompt_slug = models.CharField(max_length=100, blank=True, default="", help_text="Prompt slug.")
    prompt_version = models.CharField(max_length=32, blank=True, default="", help_text="Prompt version (x.y.z).")
    prompt_version_id = models.BigIntegerField(null=True, blank=True, help_text="PromptVersion primary key.")
    knowledge_snapshot_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="KnowledgeSnapshot the answer was grounded in (in the prefix or searched); empty when none.",
    )
    model = models.CharField(max_length=100, help_text="Model id the attempt was sent to.")
    route_reason = models.CharField(max_length=200, blank=True, default="", help_text="Why this model was chosen.")
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1-based attempt number on this model.")
    fallback_step = models.PositiveSmallIntegerField(
        default=0, help_text="Position in the fallback chain: 0 = primary model."
    )
    is_batch = models.BooleanField(default=False, help_text="Sent through the Message Batches API.")
    input_tokens = models.PositiveIntegerField(
        default=0, help_text="Uncached input tokens (after the last breakpoint)."
    )
    output_tokens = models.PositiveIntegerField(default=0, help_text="Output tokens.")
    cache_creation_input_tokens = models.PositiveIntegerField(default=0, help_text="Input tokens written to the cache.")
    cache_read_input_tokens = models.PositiveIntegerField(default=0, help_text="Input tokens read from the cache.")
    cost_usd = models.DecimalField(
        max_digits=12, decimal_places=8, default=Decimal(0), help_text="Cost in USD at settings.LLM_PRICES_PER_MTOK."
    )
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first text (streamed calls).")
    latency_ms = models.PositiveIntegerField(default=0, help_text="Time until the attempt ended.")
    stop_reason = models.CharField(max_length=40, blank=True, default="", help_text="Upstream stop_reason.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK, help_text="Outcome.")
    error_type = models.CharField(
        max_length=80, blank=True, default="", help_text="Upstream error type or exception class, on errors."
    )
    refused = models.BooleanField(default=False, help_text="The model declined (stop_reason 'refusal').")
    output_chars = models.PositiveIntegerField(default=0, help_text="Characters of text produced.")
    request_id = models.CharField(max_length=100, blank=True, default="", help_text="Upstream request id.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["prompt_slug", "prompt_version"], name="llmcall_prompt_version_idx"),
            models.Index(fields=["created_at"], name="llmcall_created_idx"),
            models.Index(fields=["model"], name="llmcall_model_idx"),
        ]
        verbose_name = "LLM call"

    def __str__(self) -> str:
        return f"{self.task_type} {self.model} #{self.attempt} {self.status}"

    @classmethod
    def failed(cls) -> models.Q:
        """Attempts that failed on the upstream's side: what an error rate counts.

        An attempt we stopped ourselves (`error_type="cancelled"`: the user's stop, a closed tab, an
        answer started before its question was stored and replaced after the commit, a shutdown) is
        logged for its cost but says nothing about the model or the prompt version.
        """
        return models.Q(status=cls.Status.ERROR) & ~models.Q(error_type="cancelled")


class RoutingRule(models.Model):
    """Which model answers which requests. The enabled rule with the lowest priority that matches wins."""

    name = models.CharField(max_length=100, unique=True, help_text="What this rule is for, shown in the admin.")
    enabled = models.BooleanField(default=True, help_text="Disabled rules are ignored.")
    priority = models.PositiveIntegerField(default=100, help_text="Lower numbers are checked first.")
    task_type = models.CharField(
        max_length=20, blank=True, default="", choices=TaskType.choices, help_text="Only this task; blank = any."
    )
    plan_tier = models.CharField(
        max_length=20,
        blank=True,
        default="",
        help_text="Only this customer plan (free, pro, enterprise); blank = any.",
    )
    min_prompt_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only prompts of at least this many tokens; empty = any."
    )
    max_prompt_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only prompts of at most this many tokens; empty = any."
    )
    model_tier = models.CharField(
        max_length=20,
        blank=True,
        default="",
        choices=ModelTier.choices,
        help_text="Model tier to use (resolved through settings.LLM_MODELS). Ignored when a model id is set.",
    )
    model_id = models.CharField(
        max_length=100, blank=True, default="", help_text="Explicit model id, e.g. claude-sonnet-4-6; wins over tier."
    )
    fallback_chain = models.CharField(
        max_length=300,
        blank=True,
        default="",
        help_text="Comma-separated tiers or model ids to try next, in order; blank = the tiers below this one.",
    )
    notes = models.TextField(blank=True, default="", help_text="Notes for admins: why this rule exists.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last edit.")

    class Meta:
        ordering = ["priority", "id"]
        indexes = [models.Index(fields=["enabled", "priority"], name="routingrule_enabled_prio_idx")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.model_tier and not self.model_id:
            raise ValidationError("Set a model tier or an explicit model id.")
        if (
            self.min_prompt_tokens is not None
            and self.max_prompt_tokens is not None
            and self.min_prompt_tokens > self.max_prompt_tokens
        ):
            raise ValidationError("min_prompt_tokens must not exceed max_prompt_tokens.")

    def matches(self, *, task_type: str, plan_tier: str, prompt_tokens: int) -> bool:
        if self.task_type and self.task_type != task_type:
            return False
        if self.plan_tier and self.plan_tier != plan_tier:
            return False
        if self.min_prompt_tokens is not None and prompt_tokens < self.min_prompt_tokens:
            return False
        if self.max_prompt_tokens is not None and prompt_tokens > self.max_prompt_tokens:
            return False
        return True
