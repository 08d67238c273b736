"""`classify_transcripts` runs the whole pipeline on demand, without Redis or a worker."""

import pytest
from django.core.management import CommandError, call_command

from apps.triage.models import DailyReport, TranscriptClassification
from apps.triage.schema import InvalidClassification, classification_parse
from tests.triage.factories import BILLING_TURNS, UNRESOLVED_TURNS, conversation_on

pytestmark = pytest.mark.django_db


def test_classify_transcripts_wait_classifies_and_reports(emulator, classifier, day, capsys, settings):
    conversation_on(day, BILLING_TURNS)
    conversation_on(day, UNRESOLVED_TURNS)

    call_command("classify_transcripts", "--date", day.isoformat(), "--wait", "--poll-seconds", "0")

    out = capsys.readouterr().out
    assert f"{day}: 1 batch(es), 2 conversation(s) submitted" in out
    assert f"{day}: 2 classified, 0 unclassifiable; report written" in out
    assert set(TranscriptClassification.objects.values_list("status", flat=True)) == {"classified"}
    assert DailyReport.objects.get(date=day).data["volumes"]["classified"] == 2
    assert (settings.REPORTS_DIR / f"transcript-report-{day}.html").exists()


def test_classify_transcripts_without_a_classifier_prompt_fails_clearly(emulator, day):
    conversation_on(day, BILLING_TURNS)
    with pytest.raises(CommandError, match="no active version"):
        call_command("classify_transcripts", "--date", day.isoformat())


def test_classify_transcripts_on_a_quiet_day(emulator, classifier, day, capsys):
    call_command("classify_transcripts", "--date", day.isoformat(), "--wait", "--poll-seconds", "0")
    out = capsys.readouterr().out
    assert f"{day}: 0 batch(es), 0 conversation(s) submitted" in out
    assert DailyReport.objects.get(date=day).data["volumes"]["conversations"] == 0


@pytest.mark.parametrize(
    "text",
    [
        "Sure! The customer asked about an invoice.",
        (
            '{"category": "sales", "resolved": true, "sentiment": "positive", "escalation_needed": false, '
            '"language": "en", "summary": "x"}'
        ),
        (
            '{"category": "billing", "resolved": "yes", "sentiment": "positive", "escalation_needed": false, '
            '"language": "en", "summary": "x"}'
        ),
        (
            '{"category": "billing", "resolved": true, "sentiment": "positive", "escalation_needed": false, '
            '"language": "en", "summary": "two\\nlines"}'
        ),
    ],
)
def test_invalid_classifications_are_rejected(text):
    with pytest.raises(InvalidClassification):
        classification_parse(text)


def test_a_fenced_classification_is_accepted():
    parsed = classification_parse(
        '```json\n{"category": "billing", "resolved": true, "sentiment": "positive", "escalation_needed": false, '
        '"language": "en", "summary": "Invoice PDF found."}\n```'
    )
    assert (parsed.category, parsed.resolved, parsed.summary) == ("billing", True, "Invoice PDF found.")


def test_the_scheduled_tasks_classify_and_report_a_day(emulator, classifier, day):
    from apps.triage import tasks

    conversation_on(day, BILLING_TURNS)
    batch_ids = tasks.submit_nightly_classification.delay(day.isoformat()).get()
    assert len(batch_ids) == 1
    assert tasks.poll_open_batches.delay().get()["reports"] == [day.isoformat()]
    # Safe to run twice: nothing more is sent or ingested.
    assert tasks.submit_nightly_classification.delay(day.isoformat()).get() == []
    assert tasks.poll_open_batches.delay().get() == {"polled": 0, "ingested": 0, "submitted": 0, "reports": []}
