"""Prompts are code: every system prompt is a versioned, reviewed, audited artefact.

A `Prompt` ("support-assistant", "transcript-classifier") has many `PromptVersion`s numbered with
semantic versions. A version moves draft → active → retired; once it has left draft it is immutable
(editing creates a new draft), so a conversation that was answered by "2.1.0" can always be traced
back to exactly the text that produced it. Several versions may be active at once and share traffic
by integer weights (A/B rollout); see `selectors.prompt_version_for_conversation`.

Writes go through `services.py`; the model-level guards below are a second line of defence against
code that bypasses them (a shell session, a data migration).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.core.exceptions import ApplicationError

if TYPE_CHECKING:
    from apps.llm.types import PromptParts

# The prompts the rest of the code base asks for by slug.
SUPPORT_ASSISTANT = "support-assistant"
TRANSCRIPT_CLASSIFIER = "transcript-classifier"

# PromptParts of published (immutable) versions, per process: (id, created_at) → parts. Bounded LRU;
# no invalidation is needed because published content never changes (see PromptVersion.save).
PUBLISHED_PARTS_CACHE_SIZE = 64
_published_parts: OrderedDict[tuple[int, object], PromptParts] = OrderedDict()
_published_parts_lock = threading.Lock()

# The content of a version: what `to_parts()` sends and what immutability protects.
CONTENT_FIELDS: tuple[str, ...] = (
    "persona",
    "business_rules",
    "output_format",
    "few_shot_examples",
    "model_tier",
    "max_tokens",
    "cache_ttl",
    "tools",
)


class Prompt(models.Model):
    """A named prompt the application asks for by slug; its text lives in versions."""

    slug = models.SlugField(max_length=80, unique=True, help_text='Stable name used by code, e.g. "support-assistant".')
    name = models.CharField(max_length=200, help_text="Human-readable name shown in the admin.")
    description = models.TextField(blank=True, help_text="What the prompt is for and who calls it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class PromptVersion(models.Model):
    """One immutable-once-published revision of a prompt: its system-prompt parts, route and limits."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="versions")
    major = models.PositiveIntegerField(help_text="Semantic version: bump for changes callers must adapt to.")
    minor = models.PositiveIntegerField(help_text="Semantic version: bump for behaviour changes (rules, documents).")
    patch = models.PositiveIntegerField(help_text="Semantic version: bump for wording fixes.")
    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.DRAFT,
        help_text="draft → active → retired. Only drafts can be edited; change status with the admin actions.",
    )
    weight = models.PositiveIntegerField(
        default=0,
        help_text="Traffic weight among the prompt's active versions (share = weight / sum of active weights). "
        "Always 0 for drafts and retired versions.",
    )

    persona = models.TextField(blank=True, help_text="Who the assistant is and how it speaks (role).")
    business_rules = models.TextField(blank=True, help_text="Policies the assistant must follow.")
    output_format = models.TextField(blank=True, help_text="The shape of the answer (Markdown, JSON schema, …).")
    few_shot_examples = models.TextField(
        blank=True, help_text="Worked examples, as <example><user>…</user><assistant>…</assistant></example> blocks."
    )
    model_tier = models.CharField(
        max_length=80,
        blank=True,
        help_text='Default route: a tier ("haiku", "sonnet", "opus") or a full model id ("claude-…"). '
        "Blank = route by the customer's plan.",
    )
    max_tokens = models.PositiveIntegerField(default=1024, help_text="Upper bound on the answer length in tokens.")
    cache_ttl = models.CharField(
        max_length=2,
        choices=[("5m", "5 minutes"), ("1h", "1 hour")],
        default="5m",
        help_text="How long the cached system prompt lives. 5 minutes (refreshed by every hit) suits a busy "
        "site; 1 hour costs 2× instead of 1.25× to write but survives quiet spells — see the preview's "
        "break-even.",
    )
    tools = models.JSONField(
        default=list,
        blank=True,
        help_text="Names of the actions (apps/actions) this version may call. Sent before the system prompt, "
        "in the registry's order, so they are part of the cached prefix.",
    )
    # No temperature field on purpose: API version 2026-10-21 (SDK 2.x) rejects `temperature`.

    change_note = models.TextField(blank=True, help_text="Why this version exists (shown in the audit log).")
    based_on = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="derived_versions",
        help_text="The version this draft was copied from; the preview compares against it.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True, help_text="When the version first became active.")
    retired_at = models.DateTimeField(null=True, blank=True, help_text="When the version was last retired.")

    class Meta:
        ordering = ["prompt__slug", "-major", "-minor", "-patch"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "major", "minor", "patch"], name="prompts_version_unique_semver"),
        ]
        indexes = [models.Index(fields=["prompt", "status"], name="prompts_version_status_idx")]
        permissions = [("publish_promptversion", "Can publish, roll back, retire and re-weight prompt versions")]

    def __str__(self) -> str:
        return f"{self.prompt.slug} {self.version}"

    def save(self, *args, **kwargs) -> None:
        # Immutability guard: content of a published version never changes, whoever calls save().
        if self.pk is not None and self.status != self.Status.DRAFT:
            stored = PromptVersion.objects.filter(pk=self.pk).values(*CONTENT_FIELDS, "major", "minor", "patch").first()
            if stored is not None:
                changed = [f for f, v in stored.items() if getattr(self, f) != v]
                if changed:
                    raise ApplicationError(
                        f"{self} is {self.status} and immutable; create a new draft to change {', '.join(changed)}.",
                        code="prompt_version_immutable",
                    )
        super().save(*args, **kwargs)

    @property
    def version(self) -> str:
        """The semantic version string, e.g. "2.1.0" (what LLMCall and Message store)."""
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def semver(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT

    def clean(self) -> None:
        if self.cache_ttl not in ("5m", "1h"):
            raise ValidationError({"cache_ttl": "Choose 5m or 1h."})
        route = self.model_tier.strip()
        if route and route not in settings.LLM_MODELS and not route.startswith("claude-"):
            tiers = ", ".join(sorted(settings.LLM_MODELS))
            raise ValidationError({"model_tier": f"Use a tier ({tiers}), a model id starting with claude-, or blank."})
        if self.max_tokens < 1:
            raise ValidationError({"max_tokens": "max_tokens must be at least 1."})

    def reference_document_pairs(self) -> tuple[tuple[str, str], ...]:
        """(title, body) pairs in their fixed order (uses a prefetch when present)."""
        documents = sorted(self.reference_documents.all(), key=lambda d: (d.position, d.pk or 0))
        return tuple((d.title, d.body) for d in documents)

    def to_parts(self) -> PromptParts:
        """The plain value the LLM gateway assembles into system blocks (see docs/architecture.md).

        Published versions are immutable, so their parts are built once per process (no documents query,
        no ~60 KB of text copied per answer) and marked `immutable` so the gateway may cache what it
        derives from them. Drafts are rebuilt on every call and never cached.
        """
        if self.is_draft or self.pk is None:
            return self._build_parts()
        # created_at in the key: a recreated database (tests) reusing an id cannot hit a stale entry.
        key = (self.pk, self.created_at)
        with _published_parts_lock:
            parts = _published_parts.get(key)
            if parts is not None:
                _published_parts.move_to_end(key)
                return parts
        parts = self._build_parts()
        with _published_parts_lock:
            _published_parts[key] = parts
            while len(_published_parts) > PUBLISHED_PARTS_CACHE_SIZE:
                _published_parts.popitem(last=False)
        return parts

    def _build_parts(self) -> PromptParts:
        from apps.llm.types import PromptParts  # prompts → llm; imported lazily so migrations never need it

        return PromptParts(
            slug=self.prompt.slug,
            version=self.version,
            version_id=self.pk,
            persona=self.persona,
            business_rules=self.business_rules,
            output_format=self.output_format,
            reference_documents=self.reference_document_pairs(),
            few_shot_examples=self.few_shot_examples,
            max_tokens=self.max_tokens,
            model_tier=self.model_tier,
            cache_ttl=self.cache_ttl,
            tool_names=tuple(self.tools or ()),
            immutable=not self.is_draft,
        )


class ReferenceDocument(models.Model):
    """A knowledge-base document included (in `position` order) in a version's cached system prefix."""

    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="reference_documents")
    position = models.PositiveIntegerField(
        default=0, help_text="Order in the prompt; keep stable to keep the cache warm."
    )
    title = models.CharField(max_length=200)
    body = models.TextField()

    class Meta:
        ordering = ["version", "position", "id"]
        indexes = [models.Index(fields=["version", "position"], name="prompts_refdoc_order_idx")]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        self._guard_draft()
        super().save(*args, **kwargs)

    def _guard_draft(self) -> None:
        status = PromptVersion.objects.filter(pk=self.version_id).values_list("status", flat=True).first()
        if status is not None and status != PromptVersion.Status.DRAFT:
            raise ApplicationError(
                "Reference documents of a published version are immutable; create a new draft.",
                code="prompt_version_immutable",
            )

    def delete(self, *args, **kwargs):
        self._guard_draft()
        return super().delete(*args, **kwargs)


class PromptAuditLog(models.Model):
    """Append-only record of who did what to a prompt version, and when."""

    class Action(models.TextChoices):
        DRAFT_CREATED = "draft_created", "Draft created"
        DRAFT_EDITED = "draft_edited", "Draft edited"
        PUBLISHED = "published", "Published"
        ROLLED_BACK = "rolled_back", "Rolled back to"
        RETIRED = "retired", "Retired"
        WEIGHT_CHANGED = "weight_changed", "Traffic weight changed"

    version = models.ForeignKey(
        PromptVersion,
        on_delete=models.SET_NULL,
        null=True,
        related_name="audit_log",
        help_text="Null only if a draft was deleted later; prompt_slug/version_label keep the record readable.",
    )
    prompt_slug = models.CharField(max_length=80, help_text="Snapshot of the prompt slug.")
    version_label = models.CharField(max_length=32, help_text='Snapshot of the semantic version, e.g. "2.1.0".')
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Staff member who acted; blank for system actions (seeding, migrations).",
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    detail = models.JSONField(default=dict, blank=True, help_text="Action-specific data (weights, replaced versions…).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["prompt_slug", "-created_at"], name="prompts_audit_slug_idx")]

    def __str__(self) -> str:
        return f"{self.prompt_slug} {self.version_label}: {self.action}"
