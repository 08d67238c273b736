"""Issue 7: the database goes away in the middle of ingesting a nightly batch; on the retry nothing is
lost and nothing is counted twice."""

import pytest
from django.db import OperationalError

from apps.llm.models import LLMCall
from apps.triage import services
from apps.triage.models import ClassificationBatch, TranscriptClassification
from tests.triage.factories import BILLING_TURNS, UNRESOLVED_TURNS, conversation_on

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_database_outage_mid_ingestion_loses_and_duplicates_nothing(emulator, classifier, day, monkeypatch):
    conversations = [conversation_on(day, BILLING_TURNS if i % 2 else UNRESOLVED_TURNS) for i in range(7)]
    (batch,) = services.classification_day_submit(for_date=day)

    # Ingest in chunks of 2 and let the database fail on the third chunk: two chunks are committed.
    monkeypatch.setattr(services, "CHUNK", 2)
    real_apply = services._results_apply
    calls = {"n": 0}

    def flaky_apply(**kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return real_apply(**kwargs)

    monkeypatch.setattr(services, "_results_apply", flaky_apply)
    with pytest.raises(OperationalError):
        services.batches_poll_open()
    partially = TranscriptClassification.objects.filter(status="classified").count()
    assert 0 < partially < len(conversations)
    assert ClassificationBatch.objects.get(pk=batch.pk).status != "ingested"

    # The periodic task runs again once the database is back.
    monkeypatch.setattr(services, "_results_apply", real_apply)
    services.batches_poll_open()

    assert ClassificationBatch.objects.get(pk=batch.pk).status == "ingested"
    assert TranscriptClassification.objects.filter(status="classified").count() == len(conversations)
    # One batch-priced call per conversation: the committed chunks were not recorded again.
    assert LLMCall.objects.filter(is_batch=True).count() == len(conversations)
    assert LLMCall.objects.filter(is_batch=True).values("request_id").distinct().count() == len(conversations)
