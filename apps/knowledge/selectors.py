"""Reads: articles for staff, the current snapshot, and which grounding mode it calls for."""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from apps.core.exceptions import NotFound
from apps.knowledge.models import Article, KnowledgeSnapshot

logger = logging.getLogger(__name__)
GroundingMode = Literal["prefix", "retrieval"]
SNAPSHOT_CACHE_KEY = "knowledge:snapshot:current"
SNAPSHOT_CACHE_SECONDS = 30


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


def snapshot_current_ref() -> tuple[int, int] | None:
    """(id, token estimate) of the current snapshot, from the cache: every answer asks, few publish.

    `services.snapshot_refresh` drops the cached value when a new snapshot commits; the timeout bounds
    how long another process with a per-process cache may keep the old one.
    """
    try:
        cached = cache.get(SNAPSHOT_CACHE_KEY)
    except Exception:  # the cache (Redis) is down: answers go on, reading the database
        logger.warning("knowledge: cache unavailable, reading the current snapshot from the database")
        cached = None
    if cached is not None:
        return tuple(cached) if cached else None
    snapshot = KnowledgeSnapshot.objects.order_by("-created_at", "-id").values_list("id", "token_estimate").first()
    with contextlib.suppress(Exception):
        cache.set(SNAPSHOT_CACHE_KEY, list(snapshot) if snapshot else [], SNAPSHOT_CACHE_SECONDS)
    return snapshot


def grounding_mode(snapshot: KnowledgeSnapshot | tuple[int, int] | None) -> GroundingMode:
    """Whole snapshot in the cached prefix while it fits the budget; retrieval beyond it."""
    if snapshot is None:
        return "prefix"
    tokens = snapshot[1] if isinstance(snapshot, tuple) else snapshot.token_estimate
    return "prefix" if tokens <= settings.KNOWLEDGE_PREFIX_MAX_TOKENS else "retrieval"
