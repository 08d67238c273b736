"""The daily report: figures checked against hand-computed values, files, email, admin page."""

import csv
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command

from apps.llm.models import LLMCall
from apps.triage.models import ClassificationBatch, ClassificationBatchItem, DailyReport, TranscriptClassification
from apps.triage.reports import report_generate
from tests.triage.factories import BILLING_TURNS, conversation_on, noon

pytestmark = pytest.mark.django_db


def classification(day, **fields) -> TranscriptClassification:
    defaults = {"status": "classified", "prompt_version": "1.0.0", "summary": "s", "language": "en"}
    return TranscriptClassification.objects.create(
        conversation=conversation_on(day, BILLING_TURNS), for_date=day, **{**defaults, **fields}
    )


def llm_call(when, **fields) -> LLMCall:
    call = LLMCall.objects.create(**fields)
    LLMCall.objects.filter(pk=call.pk).update(created_at=when)
    return call


@pytest.fixture
def known_day(day):
    """Four classified conversations and one unclassifiable; two calls that count, two that do not."""
    paid = classification(day, category="billing", resolved=True, sentiment="positive", escalation_needed=False)
    classification(
        day, category="billing", resolved=False, sentiment="negative", escalation_needed=True, summary="Refund refused"
    )
    classification(
        day,
        category="technical",
        resolved=False,
        sentiment="neutral",
        escalation_needed=False,
        language="de",
        summary="Sync fails",
    )
    classification(day, category="account", resolved=True, sentiment="positive", escalation_needed=False, language="fr")
    classification(day, status="unclassifiable", summary="", language="")
    classification(day - timedelta(days=1), category="other", resolved=False)  # another day

    # Chat on the day: $0.01, 10,000 cache-read tokens on Sonnet ($3/MTok) saved 10,000 × 3 × 0.9 / 1e6 = $0.027.
    llm_call(
        noon(day),
        task_type="chat",
        model="claude-sonnet-4-6",
        prompt_slug="support-assistant",
        prompt_version="1.0.0",
        cost_usd=Decimal("0.01"),
        cache_read_input_tokens=10_000,
    )
    llm_call(noon(day - timedelta(days=1)), task_type="chat", model="claude-sonnet-4-6", cost_usd=Decimal(5))
    # The batch call that classified one of the day's conversations, made the next night: $0.002, and
    # 4,000 cache-read tokens on Haiku ($1/MTok) at batch rates saved 4,000 × 1 × 0.9 × 0.5 / 1e6 = $0.0018.
    batch_call = llm_call(
        noon(day + timedelta(days=1)),
        task_type="classification",
        model="claude-haiku-4-5",
        prompt_slug="transcript-classifier",
        prompt_version="1.0.0",
        is_batch=True,
        cost_usd=Decimal("0.002"),
        cache_read_input_tokens=4_000,
    )
    batch = ClassificationBatch.objects.create(for_date=day, status="ingested", request_count=1)
    ClassificationBatchItem.objects.create(
        batch=batch, classification=paid, custom_id="tb1-c1-a1", attempt=1, outcome="succeeded", llm_call=batch_call
    )
    llm_call(
        noon(day + timedelta(days=1)),
        task_type="classification",
        model="claude-haiku-4-5",
        is_batch=True,
        cost_usd=Decimal(7),
    )  # another day's classification
    return day


def test_report_figures_match_hand_computed_values(known_day, settings, tmp_path):
    settings.REPORTS_DIR = tmp_path
    data = report_generate(for_date=known_day).data

    assert data["volumes"] == {"conversations": 5, "classified": 4, "unclassifiable": 1, "pending": 0}
    assert {row["category"]: (row["count"], row["share"]) for row in data["categories"]} == {
        "billing": (2, 0.5),
        "account": (1, 0.25),
        "technical": (1, 0.25),
        "other": (0, 0.0),
    }
    assert data["resolution"] == {"resolved": 2, "unresolved": 2, "rate": 0.5}
    assert data["escalations"] == {"count": 1, "rate": 0.25}
    assert {row["sentiment"]: row["count"] for row in data["sentiment"]} == {"positive": 2, "neutral": 1, "negative": 1}
    assert [(t["category"], t["count"], t["escalated"]) for t in data["top_unresolved"]] == [
        ("billing", 1, 1),
        ("technical", 1, 0),
    ]
    assert data["top_unresolved"][0]["examples"][0]["summary"] == "Refund refused"
    assert data["costs"] == {
        "calls": 2,
        "chat_usd": "0.010000",
        "batch_usd": "0.002000",
        "total_usd": "0.012000",
        "cache_savings_usd": "0.028800",
    }
    per_version = {(row["slug"], row["version"]): row for row in data["prompt_versions"]}
    assert per_version[("support-assistant", "1.0.0")]["cache_savings_usd"] == "0.027000"
    assert per_version[("transcript-classifier", "1.0.0")]["cost_usd"] == "0.002000"
    assert data["classifier_versions"] == [
        {"version": "1.0.0", "conversations": 5, "classified": 4, "unclassifiable": 1, "resolution_rate": 0.5}
    ]


def test_report_is_stored_once_and_written_as_html_and_csv(known_day, settings, tmp_path):
    settings.REPORTS_DIR = tmp_path
    report_generate(for_date=known_day)
    report_generate(for_date=known_day)

    assert DailyReport.objects.filter(date=known_day).count() == 1
    html = (tmp_path / f"transcript-report-{known_day}.html").read_text()
    assert "<svg" in html and "Refund refused" in html and "<script" not in html
    rows = list(csv.reader((tmp_path / f"transcript-report-{known_day}.csv").open()))
    assert ["resolution", "rate", "0.5"] in rows
    assert ["costs", "total_usd", "0.012000"] in rows


def test_report_is_emailed_when_recipients_are_set(known_day, settings, tmp_path):
    settings.REPORTS_DIR = tmp_path
    settings.REPORT_EMAIL_TO = ["support-leads@example.com"]
    report_generate(for_date=known_day)

    (message,) = mail.outbox
    assert message.to == ["support-leads@example.com"]
    assert "Resolution rate: 50%" in message.body
    assert message.attachments[0][0] == f"transcript-report-{known_day}.csv"


def test_no_email_without_recipients(known_day, settings, tmp_path):
    settings.REPORTS_DIR = tmp_path
    settings.REPORT_EMAIL_TO = []
    report_generate(for_date=known_day)
    assert mail.outbox == []


def test_transcript_report_command(known_day, settings, tmp_path, capsys):
    settings.REPORTS_DIR = tmp_path
    call_command("transcript_report", "--date", known_day.isoformat())
    out = capsys.readouterr().out
    assert "5 conversation(s), 4 classified, cost $0.012000" in out
    assert (tmp_path / f"transcript-report-{known_day}.csv").exists()


def test_admin_change_view_renders_the_report(known_day, settings, tmp_path, admin_client):
    settings.REPORTS_DIR = tmp_path
    report = report_generate(for_date=known_day)
    response = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/change/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f"Transcript report for {known_day}" in body
    assert body.count('class="bar-fill"') == 4 + 2 + 3  # categories, resolution, sentiment
    assert 'width="100.0%"' in body  # billing, the largest category


def test_admin_downloads_the_report_as_csv(known_day, settings, tmp_path, admin_client):
    settings.REPORTS_DIR = tmp_path
    report = report_generate(for_date=known_day)

    page = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/change/").content.decode()
    response = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/csv/")

    assert f'href="/admin/triage/dailyreport/{report.pk}/csv/"' in page
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="transcript-report-{known_day}.csv"'
    # The same file the nightly job writes.
    assert response.content == (tmp_path / f"transcript-report-{known_day}.csv").read_bytes()
    assert ["resolution", "rate", "0.5"] in list(csv.reader(response.content.decode().splitlines()))
    assert admin_client.get("/admin/triage/dailyreport/999999/csv/").status_code == 404


def test_the_csv_download_needs_an_admin_login(known_day, settings, tmp_path, client, django_user_model):
    settings.REPORTS_DIR = tmp_path
    report = report_generate(for_date=known_day)
    url = f"/admin/triage/dailyreport/{report.pk}/csv/"

    assert client.get(url).status_code == 302  # to the admin login
    django_user_model.objects.create_user(username="dave", password="pw-dave-123")
    client.login(username="dave", password="pw-dave-123")
    response = client.get(url)
    assert response.status_code == 302 and "text/csv" not in response.get("Content-Type", "")


def test_csv_cells_a_spreadsheet_would_run_are_quoted(day, settings, tmp_path):
    settings.REPORTS_DIR = tmp_path
    classification(day, category="billing", resolved=False, summary='=HYPERLINK("http://evil.example","x")')
    report_generate(for_date=day)

    rows = list(csv.reader((tmp_path / f"transcript-report-{day}.csv").open()))
    [example] = [row for row in rows if row[0] == "unresolved_example"]
    assert example[2] == '\'=HYPERLINK("http://evil.example","x")'
