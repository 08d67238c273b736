"""Snapshots: made when the published set changes, reused when it does not, never edited."""

import pytest

from apps.core.exceptions import ApplicationError
from apps.knowledge import selectors, services
from apps.knowledge.models import KnowledgeSnapshot

from .factories import make_article

pytestmark = pytest.mark.django_db


def test_drafts_make_no_snapshot_and_publishing_does() -> None:
    draft = make_article(title="Draft", status="draft")
    assert selectors.snapshot_current() is None
    services.article_publish(article=draft)
    snapshot = selectors.snapshot_current()
    assert snapshot.article_count == 1
    assert snapshot.articles[0]["title"] == "Draft"


def test_editing_a_published_article_makes_a_new_snapshot_and_keeps_the_old_one() -> None:
    article = make_article(title="Refunds", body="Within 30 days.")
    first = selectors.snapshot_current()
    services.article_update(article=article, body="Within 14 days.")
    second = selectors.snapshot_current()
    assert second.pk != first.pk
    first.refresh_from_db()
    assert first.articles[0]["body"] == "Within 30 days.\n"
    assert second.articles[0]["body"] == "Within 14 days.\n"


def test_no_change_to_published_content_reuses_the_snapshot() -> None:
    article = make_article(title="Refunds", body="Within 30 days.")
    first = selectors.snapshot_current()
    make_article(title="Not yet", status="draft")
    services.article_update(article=article, body="Within 30 days.")
    assert services.snapshot_refresh().pk == first.pk
    assert KnowledgeSnapshot.objects.count() == 1


def test_unpublishing_and_deleting_remove_the_article_from_the_next_snapshot() -> None:
    kept = make_article(title="Kept")
    gone = make_article(title="Gone")
    services.article_unpublish(article=gone)
    assert [a["title"] for a in selectors.snapshot_current().articles] == ["Kept"]
    services.article_delete(article=kept)
    assert selectors.snapshot_current().articles == []


def test_snapshots_are_immutable() -> None:
    make_article(title="Kept")
    snapshot = selectors.snapshot_current()
    snapshot.articles = []
    with pytest.raises(ApplicationError):
        snapshot.save()
    with pytest.raises(ApplicationError):
        snapshot.delete()
    snapshot.refresh_from_db()
    assert snapshot.article_count == 1


def test_grounding_mode_follows_the_token_budget(settings) -> None:
    make_article(title="Big", body="word " * 4000)  # ~20,000 characters, ~5,700 tokens
    snapshot = selectors.snapshot_current()
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 30_000
    assert selectors.grounding_mode(snapshot) == "prefix"
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 1_000
    assert selectors.grounding_mode(snapshot) == "retrieval"
