"""Reads: articles for staff, the current snapshot, and which grounding mode it calls for."""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.db.models import QuerySet

from apps.core.exceptions import NotFound
from apps.knowledge.models import Article, KnowledgeSnapshot

GroundingMode = Literal["prefix", "retrieval"]


def article_list(*, status: str = "", language: str = "", tag: str = "") -> QuerySet[Article]:
    articles = Article.objects.all()
    if status:
        articles = articles.filter(status=status)
    if language:
        articles = articles.filter(language=language)
    if tag:
        # JSON containment is not available on SQLite; tags are few per article, so filter in SQL text.
        articles = articles.filter(tags__icontains=f'"{tag}"')
    return articles.order_by("-updated_at", "-id")


def article_get(article_id: int) -> Article:
    """The article, for staff. Raises NotFound."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        raise NotFound("No such article.", code="article_not_found")
    return article


def snapshot_current() -> KnowledgeSnapshot | None:
    """The latest snapshot: what new answers are grounded in (None before anything was published)."""
    return KnowledgeSnapshot.objects.order_by("-created_at", "-id").first()


def grounding_mode(snapshot: KnowledgeSnapshot | None) -> GroundingMode:
    """Whole snapshot in the cached prefix while it fits the budget; retrieval beyond it."""
    if snapshot is None or snapshot.token_estimate <= settings.KNOWLEDGE_PREFIX_MAX_TOKENS:
        return "prefix"
    return "retrieval"
