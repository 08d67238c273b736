"""Nightly transcript classification: one row per conversation and day, the batches that carry them, the report."""

from django.db import models


class TranscriptClassification(models.Model):
    """Claude's verdict on one finished conversation, for the day of its last activity."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for the next batch (new, or requeued after a failure)
        SUBMITTED = "submitted", "Submitted"  # inside a batch that has not been ingested yet
        CLASSIFIED = "classified", "Classified"
        UNCLASSIFIABLE = "unclassifiable", "Unclassifiable"

    class Category(models.TextChoices):
        BILLING = "billing", "Billing"
        ACCOUNT = "account", "Account"
        TECHNICAL = "technical", "Technical"
        OTHER = "other", "Other"

    conversation = models.ForeignKey(
        "chat.Conversation", on_delete=models.CASCADE, related_name="classifications", help_text="The transcript."
    )
    for_date = models.DateField(help_text="The day (TIME_ZONE) of the conversation's last activity.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    category = models.CharField(max_length=20, choices=Category.choices, blank=True)
    resolved = models.BooleanField(null=True, help_text="Did the assistant resolve the customer's issue?")
    sentiment = models.CharField(max_length=20, blank=True, help_text="positive / neutral / negative.")
    escalation_needed = models.BooleanField(null=True, help_text="Should a human follow up?")
    language = models.CharField(max_length=8, blank=True, help_text="ISO 639-1 code of the conversation.")
    summary = models.CharField(max_length=300, blank=True, help_text="One line, in English.")
    knowledge_gap = models.BooleanField(
        null=True, help_text="The customer asked something the help centre did not answer (blank: not asked)."
    )
    gap_topic = models.CharField(
        max_length=80,
        blank=True,
        help_text="What the help centre lacked, in a few English words; the report groups by it.",
    )
    cx_score = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The customer's experience, 1 (very poor) to 5 (excellent)."
    )
    gap_article = models.ForeignKey(
        "knowledge.Article",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="gap_classifications",
        help_text="The draft article staff made from this gap's group, if any.",
    )
    prompt_version = models.CharField(max_length=32, blank=True, help_text="Classifier prompt version (x.y.z).")
    prompt_version_id = models.IntegerField(null=True, blank=True, help_text="prompts.PromptVersion id, if any.")
    model = models.CharField(max_length=100, blank=True, help_text="Model that produced the classification.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times it was sent in a batch.")
    needs_clarification = models.BooleanField(
        default=False, help_text="The last answer was not valid JSON: the next attempt adds a clarifying instruction."
    )
    raw_output = models.TextField(blank=True, help_text="Claude's last raw answer (kept for unclassifiable ones).")
    last_error = models.CharField(max_length=200, blank=True, help_text="Why the last attempt failed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-for_date", "id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "for_date"], name="triage_one_classification_per_day"),
        ]
        indexes = [
            models.Index(fields=["for_date", "status"], name="triage_cls_date_status"),
            models.Index(fields=["for_date", "gap_topic"], name="triage_cls_date_gap"),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id} @ {self.for_date}: {self.status}"


class KnowledgeGapDraft(models.Model):
    """The model's candidate article for one knowledge-gap topic of one day, drafted in the nightly batch.

    Its article is always a draft: a person reviews and publishes it. One article per topic across nights
    (found again by its external id `knowledge-gap:<topic>`), rewritten by a later night only while nobody
    has edited it since the model last wrote it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for the next batch (new, or requeued after a failure)
        SUBMITTED = "submitted", "Submitted"  # inside a batch that has not been ingested yet
        DRAFTED = "drafted", "Drafted"  # the article holds this night's draft
        SKIPPED = "skipped", "Skipped"  # not written: article published or edited by a person, or over the limit
        FAILED = "failed", "Failed"  # no valid draft after the allowed attempts

    for_date = models.DateField(help_text="The report day whose knowledge-gap group this drafts.")
    topic = models.CharField(max_length=80, help_text="The group's gap_topic (normalised).")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    conversation_count = models.PositiveIntegerField(default=0, help_text="Conversations in the group that day.")
    article = models.ForeignKey(
        "knowledge.Article",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="gap_drafts",
        help_text="The draft article for the topic (shared by every night that drafts it).",
    )
    written_digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of the title, body and language the model wrote: a different article means a person "
        "edited it, and later nights leave it alone.",
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times it was sent in a batch.")
    needs_clarification = models.BooleanField(
        default=False, help_text="The last answer was not a valid draft: the next attempt adds a clarifying note."
    )
    model = models.CharField(max_length=100, blank=True, help_text="Model that wrote the draft.")
    raw_output = models.TextField(blank=True, help_text="The model's last raw answer (kept when it was not used).")
    last_error = models.CharField(max_length=200, blank=True, help_text="Why the last attempt failed or was kept.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-for_date", "topic"]
        constraints = [
            models.UniqueConstraint(fields=["for_date", "topic"], name="triage_one_gap_draft_per_topic_day"),
        ]
        indexes = [
            models.Index(fields=["status"], name="triage_gap_draft_status"),
            models.Index(fields=["topic"], name="triage_gap_draft_topic"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} @ {self.for_date}: {self.status}"


class ClassificationBatch(models.Model):
    """One Message Batch, written locally (with its items) *before* it is sent, so a crash cannot lose track of it.

    A batch carries either transcripts to classify or, once a day's classification is complete, that day's
    knowledge-gap topics to draft articles for (`kind`): both go through the same prepare / submit /
    reconcile / poll / ingest steps.
    """

    class Kind(models.TextChoices):
        CLASSIFICATION = "classification", "Classification"
        GAP_DRAFTS = "gap_drafts", "Knowledge-gap drafts"

    class Status(models.TextChoices):
        PREPARING = "preparing", "Preparing"  # rows written; may or may not be upstream (see submit_attempted_at)
        SUBMITTED = "submitted", "Submitted"  # upstream id known; processing
        INGESTED = "ingested", "Ingested"  # every result stored or requeued
        FAILED = "failed", "Failed"  # lost upstream (deleted / results gone); items requeued

    for_date = models.DateField(help_text="The day whose conversations this batch classifies (or drafts for).")
    kind = models.CharField(
        max_length=20, choices=Kind.choices, default=Kind.CLASSIFICATION, help_text="What the requests ask for."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PREPARING)
    anthropic_batch_id = models.CharField(
        max_length=100, null=True, blank=True, unique=True, help_text="The upstream msgbatch_… id once known."
    )
    request_count = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0, help_text="Serialised size of the requests.")
    prompt_slug = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True, help_text="Classifier prompt version sent (x.y.z).")
    prompt_version_id = models.IntegerField(
        null=True, blank=True, help_text="prompts.PromptVersion id: a re-send uses exactly this version."
    )
    knowledge_snapshot_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Drafting batches: the knowledge snapshot current when it was prepared (logged on its calls).",
    )
    submit_attempted_at = models.DateTimeField(
        null=True, blank=True, help_text="Set just before batches.create: from then on the batch may exist upstream."
    )
    upstream_status = models.CharField(max_length=20, blank=True, help_text="Last processing_status seen.")
    request_counts = models.JSONField(default=dict, blank=True, help_text="Last request_counts seen upstream.")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "classification batches"
        indexes = [models.Index(fields=["status"], name="triage_batch_status")]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.status}, {self.anthropic_batch_id or 'no upstream id'})"

    @property
    def custom_id_prefix(self) -> str:
        """Every request's custom_id starts with this: how a lost submission is recognised upstream."""
        return f"tb{self.pk}-"


class ClassificationBatchItem(models.Model):
    """One request in a batch: one attempt at classifying one conversation, or at drafting one gap topic's article."""

    class Outcome(models.TextChoices):
        WAITING = "", "Waiting"
        SUCCEEDED = "succeeded", "Succeeded"  # valid JSON, classification stored
        INVALID = "invalid", "Invalid output"
        ERRORED = "errored", "Errored"
        EXPIRED = "expired", "Expired"
        CANCELED = "canceled", "Canceled"
        MISSING = "missing", "Missing from results"

    batch = models.ForeignKey(ClassificationBatch, on_delete=models.CASCADE, related_name="items")
    classification = models.ForeignKey(
        TranscriptClassification, null=True, blank=True, on_delete=models.CASCADE, related_name="items"
    )
    gap_draft = models.ForeignKey(
        KnowledgeGapDraft, null=True, blank=True, on_delete=models.CASCADE, related_name="items"
    )
    custom_id = models.CharField(
        max_length=64,
        unique=True,
        help_text="tb<batch>-c<classification>-a<attempt>, or tb<batch>-g<gap draft>-a<attempt>.",
    )
    attempt = models.PositiveSmallIntegerField(help_text="1-based attempt number for this classification.")
    clarifying = models.BooleanField(default=False, help_text="Sent with the clarifying instruction.")
    model = models.CharField(max_length=100, blank=True, help_text="Model the request was routed to.")
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True, default=Outcome.WAITING)
    ingested_at = models.DateTimeField(
        null=True, blank=True, help_text="Set once, in the same transaction as its effects: re-ingesting is a no-op."
    )
    llm_call = models.ForeignKey(
        "llm.LLMCall",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="triage_items",
        help_text="Cost record.",
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["batch", "ingested_at"], name="triage_item_batch_ingested")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(classification__isnull=False, gap_draft__isnull=True)
                | models.Q(classification__isnull=True, gap_draft__isnull=False),
                name="triage_item_one_target",
            )
        ]

    def __str__(self) -> str:
        return self.custom_id


class DailyReport(models.Model):
    """The day's figures, computed once all the day's batches are ingested (regenerated on demand)."""

    date = models.DateField(unique=True)
    data = models.JSONField(help_text="See apps.triage.reports.report_data_build for the shape.")
    generated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"Report {self.date}"
