"""The staff articles API: token auth, validation, 404s, publishing, the schema."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.knowledge.models import Article, KnowledgeSnapshot

from .factories import StaffFactory, UserFactory, make_article

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def staff_client() -> APIClient:
    return client_for(StaffFactory())


def test_anonymous_and_bad_tokens_are_refused() -> None:
    assert APIClient().get("/api/knowledge/articles/").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/knowledge/articles/").status_code == 401


def test_customers_cannot_use_it_even_with_a_token() -> None:
    response = client_for(UserFactory()).post("/api/knowledge/articles/", {"title": "x", "body": "y"}, format="json")
    assert response.status_code == 403
    assert not Article.objects.exists()


def test_create_read_update_delete(staff_client: APIClient) -> None:
    created = staff_client.post(
        "/api/knowledge/articles/",
        {
            "title": " Reset your password ",
            "body": "Open **Settings**.",
            "tags": ["Account", "account"],
            "language": "en",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    article = created.json()
    assert article["title"] == "Reset your password"
    assert article["tags"] == ["account"]
    assert article["status"] == "draft"

    url = f"/api/knowledge/articles/{article['id']}/"
    assert staff_client.get(url).json()["body"] == "Open **Settings**.\n"
    patched = staff_client.patch(url, {"url": "https://help.example.com/reset"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["url"] == "https://help.example.com/reset"
    listed = staff_client.get("/api/knowledge/articles/?status=draft").json()
    assert [a["id"] for a in listed["results"]] == [article["id"]]

    assert staff_client.delete(url).status_code == 204
    assert staff_client.get(url).status_code == 404


def test_validation_errors_name_the_fields_and_store_nothing(staff_client: APIClient) -> None:
    response = staff_client.post(
        "/api/knowledge/articles/",
        {"title": "", "body": "x", "url": "javascript:alert(1)", "language": "xx", "colour": "red"},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_article"
    assert set(body["errors"]) == {"title", "url", "language", "colour"}
    assert not Article.objects.exists()


def test_a_bad_edit_leaves_the_article_as_it_was(staff_client: APIClient) -> None:
    article = make_article(title="Invoices", body="Download them from Billing.")
    response = staff_client.patch(f"/api/knowledge/articles/{article.id}/", {"body": "", "title": "New"}, format="json")
    assert response.status_code == 400
    article.refresh_from_db()
    assert (article.title, article.body) == ("Invoices", "Download them from Billing.\n")


def test_unknown_articles_are_404_for_every_verb(staff_client: APIClient) -> None:
    for method, path in [
        ("get", "/api/knowledge/articles/999999/"),
        ("patch", "/api/knowledge/articles/999999/"),
        ("delete", "/api/knowledge/articles/999999/"),
        ("post", "/api/knowledge/articles/999999/publish/"),
    ]:
        response = getattr(staff_client, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "article_not_found"


def test_publishing_makes_a_snapshot_and_makes_the_article_searchable(staff_client: APIClient) -> None:
    created = staff_client.post(
        "/api/knowledge/articles/",
        {"title": "Shipping times", "body": "Parcels arrive within five working days.", "language": "en"},
        format="json",
    ).json()
    assert not KnowledgeSnapshot.objects.exists()
    assert staff_client.get("/api/knowledge/search/?q=parcels").json() == []

    published = staff_client.post(f"/api/knowledge/articles/{created['id']}/publish/")
    assert published.json()["status"] == "published"
    snapshot = KnowledgeSnapshot.objects.get()
    assert [a["title"] for a in snapshot.articles] == ["Shipping times"]
    hits = staff_client.get("/api/knowledge/search/?q=when will my parcels arrive").json()
    assert [h["article_id"] for h in hits] == [created["id"]]


def test_the_openapi_schema_documents_the_articles_api(staff_client: APIClient) -> None:
    schema = staff_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/knowledge/articles/" in schema["paths"]
    assert "/api/knowledge/articles/{article_id}/publish/" in schema["paths"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_the_admin_lists_how_often_an_article_is_cited_and_the_thumbs(client) -> None:
    from apps.knowledge.models import ArticleCitation

    article = make_article(title="Shipping times", body="Five days.")
    ArticleCitation.objects.create(article=article, message_id=1, rating="up")
    ArticleCitation.objects.create(article=article, message_id=2, rating="down")
    ArticleCitation.objects.create(article=article, message_id=3)
    admin_user = StaffFactory(is_superuser=True)
    client.force_login(admin_user)
    page = client.get("/admin/knowledge/article/").content.decode()
    assert '<td class="field-times_cited">3</td>' in page
    assert '<td class="field-thumbs_up">1</td>' in page
    assert '<td class="field-thumbs_down">1</td>' in page
