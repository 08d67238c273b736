"""Knowledge as data: help-centre articles, edited apart from prompts, and immutable snapshots of them.

An `Article` is edited freely (admin, REST API, `import_articles`). Publishing, unpublishing or editing a
published article makes a new `KnowledgeSnapshot` when the published set's content changed: the exact
text the assistant may ground answers in, frozen, so each LLM call can name the snapshot it used and the
cached system prefix stays byte-stable until the next snapshot.

The full-text index is not a model field: PostgreSQL keeps a generated `search_vector` column with a GIN
index, SQLite an FTS5 table; both are created by migration 0002 and read by `search.py`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.exceptions import ApplicationError


class Language(models.TextChoices):
    ENGLISH = "en", "English"
    GERMAN = "de", "German"
    FRENCH = "fr", "French"
    SPANISH = "es", "Spanish"
    ITALIAN = "it", "Italian"
    PORTUGUESE = "pt", "Portuguese"
    DUTCH = "nl", "Dutch"


class Article(models.Model):
    """One help-centre article in one language."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    title = models.CharField(max_length=200, help_text="Shown to customers and cited in answers.")
    body = models.TextField(help_text="The article in Markdown.")
    url = models.URLField(
        max_length=500, blank=True, default="", help_text="Public address of the article; answers link to it."
    )
    language = models.CharField(
        max_length=8,
        choices=Language.choices,
        default=Language.ENGLISH,
        help_text="Language of the text: selects the stemming used to index it and is preferred for "
        "customers writing in it.",
    )
    tags = models.JSONField(default=list, blank=True, help_text='Labels for sorting and syncing, e.g. ["billing"].')
    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.DRAFT,
        help_text="Only published articles reach the assistant (through the next snapshot).",
    )
    external_id = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Identifier in the system the article is synced from (a help centre, a file name); "
        "imports update the article with the same external id.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last edit.")
    published_at = models.DateTimeField(null=True, blank=True, help_text="When it was last published.")

    class Meta:
        ordering = ["title", "id"]
        indexes = [
            models.Index(fields=["status", "language"], name="knowledge_article_status_idx"),
            models.Index(fields=["-updated_at"], name="knowledge_article_updated_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=~models.Q(external_id=""), name="knowledge_article_external_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.title} [{self.language}]"


class KnowledgeSnapshot(models.Model):
    """The published articles at one moment, frozen: what one LLM call was grounded in."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who published the change; blank for imports and system actions.",
    )
    digest = models.CharField(max_length=64, help_text="SHA-256 of `articles`: equal content, equal digest.")
    articles = models.JSONField(
        help_text="[{id, title, url, language, body}] in a fixed order (id): the exact grounding text."
    )
    article_count = models.PositiveIntegerField(default=0)
    token_estimate = models.PositiveIntegerField(
        default=0, help_text="Approximate tokens of the whole snapshot: decides prefix or retrieval mode."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self) -> str:
        return f"snapshot {self.pk} ({self.article_count} articles)"

    def save(self, *args, **kwargs) -> None:
        # Immutable: an LLM call names a snapshot, so its content must never change under it.
        if self.pk is not None and KnowledgeSnapshot.objects.filter(pk=self.pk).exists():
            raise ApplicationError("Knowledge snapshots are immutable.", code="snapshot_immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ApplicationError("Knowledge snapshots are immutable.", code="snapshot_immutable")


class ArticleCitation(models.Model):
    """An answer that cited an article: counted per article in the admin, with the answer's thumbs.

    `message_id` names chat's Message without a foreign key: chat depends on knowledge, not back.
    """

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="citations")
    message_id = models.BigIntegerField(help_text="The assistant message (chat) that cited the article.")
    rating = models.CharField(
        max_length=4, blank=True, default="", help_text='The thumbs the answer got ("up", "down", "" for none).'
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["article", "message_id"], name="knowledge_citation_unique"),
        ]
        indexes = [models.Index(fields=["message_id"], name="knowledge_citation_message_idx")]

    def __str__(self) -> str:
        return f"article {self.article_id} cited by message {self.message_id}"
