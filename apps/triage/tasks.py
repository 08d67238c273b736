"""Celery entry points (scheduled in supportbot/settings/celery.py). Thin: parse, call one service, safe twice."""

from datetime import date

from celery import shared_task

from apps.triage import selectors, services


@shared_task(name="apps.triage.tasks.submit_nightly_classification")
def submit_nightly_classification(for_date: str | None = None) -> list[int]:
    """Classify a day's finished conversations (default: yesterday). Returns the local batch ids sent."""
    day = date.fromisoformat(for_date) if for_date else selectors.default_report_date()
    return [batch.pk for batch in services.classification_day_submit(for_date=day)]


@shared_task(name="apps.triage.tasks.poll_open_batches")
def poll_open_batches() -> dict:
    """Submit what is waiting, ingest what has ended, write the reports of completed days."""
    summary = services.batches_poll_open()
    return {
        "polled": summary.polled,
        "ingested": summary.ingested,
        "submitted": summary.submitted,
        "reports": [day.isoformat() for day in summary.reports],
    }
