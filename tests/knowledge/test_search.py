"""Retrieval with the database's own engine (run under DATABASE_URL=postgres://… for PostgreSQL)."""

import pytest

from apps.knowledge import search, services

from .factories import make_article

pytestmark = pytest.mark.django_db


@pytest.fixture
def base() -> dict[str, int]:
    articles = {
        "card_en": make_article(
            title="Update your credit card",
            body="Go to Billing, choose Payment method and enter the new card details.",
            language="en",
        ),
        "card_de": make_article(
            title="Kreditkarte aktualisieren",
            body="Öffnen Sie Abrechnung, wählen Sie Zahlungsmethode und geben Sie die neue Kreditkarte ein.",
            language="de",
        ),
        "card_fr": make_article(
            title="Mettre à jour votre carte bancaire",
            body="Ouvrez Facturation, choisissez Moyen de paiement et saisissez la nouvelle carte.",
            language="fr",
        ),
        "refund_fr": make_article(
            title="Demander un remboursement",
            body="Les remboursements sont possibles pendant 30 jours après l'achat.",
            language="fr",
        ),
        "export_en": make_article(
            title="Export your data", body="Settings → Data export produces a ZIP archive.", language="en"
        ),
        "hidden": make_article(title="Credit card fraud (internal)", body="Card card card.", status="draft"),
    }
    return {name: article.id for name, article in articles.items()}


def ids(hits) -> list[int]:
    return [hit.article_id for hit in hits]


def test_the_question_finds_the_article_in_its_own_language(base) -> None:
    assert ids(search.search("How do I update my credit card?", "en", 1)) == [base["card_en"]]
    assert ids(search.search("Wie aktualisiere ich meine Kreditkarte?", "de", 1)) == [base["card_de"]]
    assert ids(search.search("Comment mettre à jour ma carte bancaire ?", "fr", 1)) == [base["card_fr"]]
    assert ids(search.search("Je voudrais un remboursement", "fr", 1)) == [base["refund_fr"]]


def test_other_languages_only_fill_the_remaining_places(base) -> None:
    hits = search.search("Kreditkarte card", "de", 3)
    assert hits[0].article_id == base["card_de"]
    assert base["card_en"] in ids(hits[1:])


def test_drafts_and_unpublished_articles_are_never_found(base) -> None:
    assert base["hidden"] not in ids(search.search("credit card fraud internal", "en", 10))
    services.article_unpublish(article=services.Article.objects.get(pk=base["card_en"]))
    assert base["card_en"] not in ids(search.search("update credit card", "en", 10))


def test_nothing_matching_and_empty_questions_find_nothing(base) -> None:
    assert search.search("zebra xylophone", "en", 5) == []
    assert search.search("   ", "en", 5) == []
    assert search.search('"quotes" AND OR NOT ( * ', "en", 5) == []


def test_hits_carry_what_a_search_result_block_needs(base) -> None:
    (hit,) = search.search("export data ZIP", "en", 1)
    assert (hit.title, hit.language) == ("Export your data", "en")
    assert "ZIP archive" in hit.body
    assert hit.score > 0


def test_the_demo_help_centre_answers_each_language_from_its_own_article() -> None:
    services.demo_articles_seed()
    assert services.demo_articles_seed() == 0  # idempotent
    (de,) = search.search("Wie kann ich meine Kreditkarte aktualisieren?", "de", 1)
    (fr,) = search.search("Comment mettre à jour ma carte bancaire ?", "fr", 1)
    (en,) = search.search("How do I update my credit card?", "en", 1)
    assert (de.language, fr.language, en.language) == ("de", "fr", "en")
    assert "Kreditkarte" in de.title and "carte" in fr.title and "credit card" in en.title
