"""Staff find the knowledge-gap draft articles awaiting review in the article admin."""

import pytest

from apps.knowledge.services import article_create

pytestmark = pytest.mark.django_db


def test_the_article_list_filters_the_gap_drafts_awaiting_review(admin_client):
    article_create(title="Exporting to Xero", body="Draft.", tags=["knowledge-gap"])
    article_create(title="Linux desktop app", body="Published.", tags=["knowledge-gap"], status="published")
    article_create(title="Refunds", body="A draft of another kind.", tags=["billing"])

    page = admin_client.get("/admin/knowledge/article/?review=gap-drafts").content.decode()

    assert "Exporting to Xero" in page
    assert "Linux desktop app" not in page and "Refunds" not in page
    everything = admin_client.get("/admin/knowledge/article/").content.decode()
    assert "Knowledge-gap drafts awaiting review" in everything and "Refunds" in everything
