"""Knowledge gaps: the nightly batch marks what the help centre did not answer, the report groups it, and staff
turn a group into a draft article that is never served until someone publishes it."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from apps.core.exceptions import NotFound
from apps.knowledge import selectors as knowledge_selectors
from apps.knowledge.models import Article
from apps.knowledge.services import article_create, snapshot_content
from apps.triage import services
from apps.triage.models import DailyReport, TranscriptClassification
from apps.triage.reports import report_csv, report_generate
from apps.triage.schema import InvalidClassification, classification_parse
from tests.triage.factories import BILLING_TURNS, conversation_on

pytestmark = pytest.mark.django_db

NOT_FOUND_ANSWER = (
    "I'm sorry, I couldn't find information about that in our help center. Could you give me a few more "
    "details, or would you like me to connect you with our support team?"
)
XERO_TURNS = [
    ("user", "Can I export my invoices straight into Xero?"),
    ("assistant", NOT_FOUND_ANSWER),
    ("user", "Ok, never mind."),
]
XERO_AGAIN_TURNS = [
    ("user", "Can I export my invoices into Xero?"),
    ("assistant", NOT_FOUND_ANSWER),
]
GERMAN_GAP_TURNS = [
    ("user", "Gibt es eine Desktop-App für Linux?"),
    (
        "assistant",
        "Leider habe ich dazu nichts in unserem Hilfe-Center gefunden. Können Sie mir mehr Details nennen?",
    ),
]


def test_old_classifier_answers_without_the_new_keys_still_validate():
    parsed = classification_parse(
        '{"category": "billing", "resolved": true, "sentiment": "positive", "escalation_needed": false, '
        '"language": "en", "summary": "Invoice PDF found."}'
    )
    assert (parsed.knowledge_gap, parsed.gap_topic, parsed.cx_score) == (None, "", None)


@pytest.mark.parametrize("score", [0, 6, "4", 3.5])
def test_a_cx_score_outside_one_to_five_is_invalid(score):
    text = (
        '{"category": "other", "resolved": true, "sentiment": "neutral", "escalation_needed": false, '
        f'"language": "en", "summary": "s", "knowledge_gap": false, "gap_topic": "", "cx_score": {score!r}}}'
    ).replace("'", '"')
    with pytest.raises(InvalidClassification):
        classification_parse(text)


def test_a_topic_without_a_gap_is_dropped():
    parsed = classification_parse(
        '{"category": "other", "resolved": true, "sentiment": "neutral", "escalation_needed": false, '
        '"language": "en", "summary": "s", "knowledge_gap": false, "gap_topic": "xero", "cx_score": 4}'
    )
    assert parsed.gap_topic == ""


def test_the_batch_marks_gaps_scores_and_the_report_groups_them(emulator, classifier, day):
    first = conversation_on(day, XERO_TURNS)
    second = conversation_on(day, XERO_TURNS)
    conversation_on(day, GERMAN_GAP_TURNS)
    answered = conversation_on(day, BILLING_TURNS)

    services.classification_day_submit(for_date=day)
    summary = services.batches_poll_open()

    assert summary.reports == [day]
    rows = {row.conversation_id: row for row in TranscriptClassification.objects.filter(for_date=day)}
    assert (rows[first.pk].knowledge_gap, rows[first.pk].gap_topic) == (True, "export invoices xero")
    assert rows[second.pk].gap_topic == rows[first.pk].gap_topic
    assert (rows[answered.pk].knowledge_gap, rows[answered.pk].gap_topic, rows[answered.pk].cx_score) == (
        False,
        "",
        4,
    )
    assert rows[first.pk].cx_score == 2
    data = DailyReport.objects.get(date=day).data
    gaps = data["knowledge_gaps"]
    assert (gaps["count"], gaps["assessed"], gaps["rate"]) == (3, 4, 0.75)
    assert (gaps["groups"][0]["topic"], gaps["groups"][0]["count"]) == ("export invoices xero", 2)
    assert {tuple(group["languages"]) for group in gaps["groups"]} == {("en",), ("de",)}
    assert {example["conversation_id"] for example in gaps["groups"][0]["examples"]} == {str(first.pk), str(second.pk)}
    assert data["cx_score"]["distribution"][1] == {"score": 2, "count": 3}
    assert data["cx_score"]["average"] == round((2 + 2 + 2 + 4) / 4, 2)
    rows_csv = list(csv.reader(io.StringIO(report_csv(data))))
    assert ["knowledge_gap", "export invoices xero", "2"] in rows_csv
    assert ["cx_score", "average", str(data["cx_score"]["average"])] in rows_csv


def _gap(day, turns, topic, **fields) -> TranscriptClassification:
    return TranscriptClassification.objects.create(
        conversation=conversation_on(day, turns),
        for_date=day,
        status="classified",
        summary=fields.pop("summary", "Customer asked about exporting invoices to Xero; nothing found."),
        language=fields.pop("language", "en"),
        knowledge_gap=True,
        gap_topic=topic,
        **fields,
    )


def test_a_group_becomes_one_draft_article_that_is_not_served(day):
    published = article_create(title="Invoices", body="Open Billing, then Invoices.", status="published")
    served_before = snapshot_content()
    rows = [_gap(day, XERO_TURNS, "export invoices xero") for _ in range(2)]
    other = _gap(day, GERMAN_GAP_TURNS, "linux desktop app", language="de")

    article = services.knowledge_gap_draft_create(for_date=day, topic="Export invoices Xero.")
    again = services.knowledge_gap_draft_create(for_date=day, topic="export invoices xero")

    assert again.pk == article.pk
    assert Article.objects.count() == 2
    assert (article.status, article.title, article.tags) == ("draft", "Export invoices xero", ["knowledge-gap"])
    assert "exporting invoices to Xero" in article.body and str(rows[0].conversation_id) in article.body
    assert set(TranscriptClassification.objects.filter(gap_article=article)) == set(rows)
    assert TranscriptClassification.objects.get(pk=other.pk).gap_article is None
    # Nothing reaches customers until a person publishes it.
    assert snapshot_content() == served_before
    assert [a.pk for a in knowledge_selectors.article_list(status="published")] == [published.pk]


def test_a_topic_seen_again_on_a_later_day_reuses_the_draft(day):
    _gap(day, XERO_TURNS, "export invoices xero")
    later = day.replace(day=day.day + 1)
    _gap(later, XERO_AGAIN_TURNS, "export invoices xero")
    first = services.knowledge_gap_draft_create(for_date=day, topic="export invoices xero")
    second = services.knowledge_gap_draft_create(for_date=later, topic="export invoices xero")
    assert first.pk == second.pk


def test_an_unknown_topic_is_not_found(day):
    _gap(day, XERO_TURNS, "export invoices xero")
    with pytest.raises(NotFound):
        services.knowledge_gap_draft_create(for_date=day, topic="something else")


def test_staff_draft_an_article_from_the_report_page(day, settings, tmp_path, admin_client):
    settings.REPORTS_DIR = tmp_path
    _gap(day, XERO_TURNS, "export invoices xero")
    report = report_generate(for_date=day, send_email=False)

    page = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/change/").content.decode()
    assert "export invoices xero" in page and "Draft an article" in page

    response = admin_client.post(
        f"/admin/triage/dailyreport/{report.pk}/gaps/draft/", {"topic": "export invoices xero"}
    )
    article = Article.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/knowledge/article/{article.pk}/change/")
    page = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/change/").content.decode()
    assert f"draft article #{article.pk}" in page
    assert admin_client.get(f"/admin/triage/dailyreport/{report.pk}/gaps/draft/").status_code == 405


def test_staff_without_article_rights_cannot_draft(day, settings, tmp_path, client):
    from django.contrib.auth.models import Permission

    settings.REPORTS_DIR = tmp_path
    _gap(day, XERO_TURNS, "export invoices xero")
    report = report_generate(for_date=day, send_email=False)
    viewer = get_user_model().objects.create_user("report-viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_dailyreport"))
    client.force_login(viewer)

    page = client.get(f"/admin/triage/dailyreport/{report.pk}/change/").content.decode()
    assert "export invoices xero" in page and "Draft an article" not in page
    response = client.post(f"/admin/triage/dailyreport/{report.pk}/gaps/draft/", {"topic": "export invoices xero"})
    assert response.status_code == 403
    assert not Article.objects.exists()


def test_the_classification_list_filters_by_gap_and_score(day, admin_client):
    _gap(day, XERO_TURNS, "export invoices xero", cx_score=2)
    page = admin_client.get("/admin/triage/transcriptclassification/?knowledge_gap__exact=1&cx_score=2")
    assert page.status_code == 200 and "export invoices xero" in page.content.decode()
    empty = admin_client.get("/admin/triage/transcriptclassification/?cx_score=5").content.decode()
    assert "export invoices xero" not in empty


def test_gaps_without_a_topic_are_one_group_drafted_once(day):
    _gap(day, XERO_TURNS, "")
    first = services.knowledge_gap_draft_create(for_date=day, topic="unspecified")
    second = services.knowledge_gap_draft_create(for_date=day, topic="unspecified")
    assert first.pk == second.pk and first.title == "Unanswered questions"
