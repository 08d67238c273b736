"""The nightly classification against the offline emulator's Batches API (real HTTP, real SDK)."""

from datetime import timedelta

import pytest

from apps.llm.clients import get_client
from apps.llm.models import LLMCall
from apps.triage import services
from apps.triage.models import ClassificationBatch, ClassificationBatchItem, DailyReport, TranscriptClassification
from apps.triage.schema import CLARIFYING_INSTRUCTION
from tests.conftest import received_requests, set_faults
from tests.triage.factories import (
    BILLING_TURNS,
    PROSE_OUTPUT_FORMAT,
    UNRESOLVED_TURNS,
    classifier_version,
    conversation_on,
)

Status = TranscriptClassification.Status
pytestmark = pytest.mark.django_db(transaction=False)


def upstream_batches() -> list:
    return list(get_client().messages.batches.list(limit=100))


def poll_until_quiet(max_passes: int = 10) -> None:
    """Run the periodic task until nothing is left to send or ingest."""
    for _ in range(max_passes):
        services.batches_poll_open()
        if not ClassificationBatch.objects.filter(status__in=["preparing", "submitted"]).exists() and not (
            TranscriptClassification.objects.filter(status__in=[Status.PENDING, Status.SUBMITTED]).exists()
        ):
            return
    raise AssertionError("the pipeline did not settle")


def test_a_day_is_classified_costed_and_reported(emulator, classifier, day):
    billing = conversation_on(day, BILLING_TURNS)
    unresolved = conversation_on(day, UNRESOLVED_TURNS)
    conversation_on(day, [("assistant", "Hello! How can I help?")])  # no customer message: not a transcript
    conversation_on(day - timedelta(days=1), BILLING_TURNS)  # another day

    batches = services.classification_day_submit(for_date=day)
    assert [batch.request_count for batch in batches] == [2]
    assert batches[0].anthropic_batch_id and batches[0].status == "submitted"

    summary = services.batches_poll_open()

    assert summary.reports == [day]
    by_conversation = {c.conversation_id: c for c in TranscriptClassification.objects.filter(for_date=day)}
    assert set(by_conversation) == {billing.pk, unresolved.pk}
    assert by_conversation[billing.pk].category == "billing"
    verdict = by_conversation[unresolved.pk]
    assert (verdict.status, verdict.category, verdict.resolved, verdict.escalation_needed, verdict.sentiment) == (
        Status.CLASSIFIED,
        "technical",
        False,
        True,
        "negative",
    )
    assert verdict.prompt_version == "1.0.0" and verdict.summary
    calls = LLMCall.objects.filter(is_batch=True, task_type="classification")
    assert calls.count() == 2 and all(call.cost_usd > 0 for call in calls)
    assert {call.conversation_id for call in calls} == {str(billing.pk), str(unresolved.pk)}
    report = DailyReport.objects.get(date=day)
    assert report.data["volumes"]["classified"] == 2


def test_requests_cache_the_classifier_prompt_and_mask_pii(emulator, classifier, day, settings):
    settings.TRIAGE_MASK_PII = True
    conversation_on(day, [("user", "I was charged twice, my email is jo@example.com and card 4242 4242 4242 4242")])
    services.classification_day_submit(for_date=day)

    body = next(r for r in received_requests(emulator) if r.get("path", "").endswith("/v1/messages/batches"))
    (request,) = body["body"]["requests"]
    system = request["params"]["system"]
    assert any(block.get("cache_control") for block in system)
    user_text = _user_text(request)
    assert "jo@example.com" not in user_text and "4242" not in user_text
    assert "[email]" in user_text and "[card]" in user_text


def test_batches_are_split_within_the_request_and_byte_limits(emulator, classifier, day, settings):
    for _ in range(5):
        conversation_on(day, BILLING_TURNS)
    settings.TRIAGE_BATCH_MAX_REQUESTS = 2

    batches = services.classification_day_submit(for_date=day)

    assert [batch.request_count for batch in batches] == [2, 2, 1]
    assert len(upstream_batches()) == 3

    # Now by bytes: room for about two requests per batch.
    day2 = day + timedelta(days=1)
    for _ in range(5):
        conversation_on(day2, BILLING_TURNS)
    settings.TRIAGE_BATCH_MAX_REQUESTS = 100
    one_request = batches[0].size_bytes // 2
    settings.TRIAGE_BATCH_MAX_BYTES = int(one_request * 2.5)
    byte_batches = services.classification_day_submit(for_date=day2)
    assert len(byte_batches) == 3
    assert all(batch.size_bytes <= settings.TRIAGE_BATCH_MAX_BYTES for batch in byte_batches)
    poll_until_quiet()
    assert TranscriptClassification.objects.filter(status=Status.CLASSIFIED).count() == 10


def test_shuffled_results_are_matched_to_their_conversations(emulator, classifier, day):
    billing = [conversation_on(day, BILLING_TURNS).pk for _ in range(6)]
    technical = [conversation_on(day, UNRESOLVED_TURNS).pk for _ in range(6)]
    services.classification_day_submit(for_date=day)
    services.batches_poll_open()

    categories = dict(TranscriptClassification.objects.values_list("conversation_id", "category"))
    assert {categories[pk] for pk in billing} == {"billing"}
    assert {categories[pk] for pk in technical} == {"technical"}
    # Every custom_id came back exactly once and points at its own conversation.
    for item in ClassificationBatchItem.objects.select_related("classification", "llm_call"):
        assert item.llm_call.request_id == item.custom_id
        assert item.llm_call.conversation_id == str(item.classification.conversation_id)


def test_errored_requests_are_retried_then_given_up(emulator, classifier, day, settings):
    settings.TRIAGE_MAX_ATTEMPTS = 3
    conversation = conversation_on(day, BILLING_TURNS)
    set_faults(emulator, {"batch_processing_seconds": 0, "batch_error_rate": 1.0})

    services.classification_day_submit(for_date=day)
    poll_until_quiet()

    verdict = TranscriptClassification.objects.get(conversation=conversation)
    assert verdict.status == Status.UNCLASSIFIABLE
    assert verdict.attempts == 3 and verdict.last_error == "api_error"
    assert len(upstream_batches()) == 3  # one batch per attempt, then it stops
    assert LLMCall.objects.filter(is_batch=True, status="error", error_type="api_error").count() == 3
    assert DailyReport.objects.get(date=day).data["volumes"]["unclassifiable"] == 1


def test_expired_requests_are_requeued_for_the_next_run(emulator, classifier, day):
    conversation = conversation_on(day, BILLING_TURNS)
    set_faults(emulator, {"batch_processing_seconds": 0, "batch_expire_rate": 1.0})
    services.classification_day_submit(for_date=day)
    services.batches_poll_open()
    verdict = TranscriptClassification.objects.get(conversation=conversation)
    assert (verdict.status, verdict.last_error) == (Status.PENDING, "expired")

    set_faults(emulator, {"batch_processing_seconds": 0})
    poll_until_quiet()

    verdict.refresh_from_db()
    assert (verdict.status, verdict.attempts, verdict.category) == (Status.CLASSIFIED, 2, "billing")


def test_a_canceled_batch_is_ingested_and_its_items_sent_again(emulator, classifier, day):
    conversation = conversation_on(day, BILLING_TURNS)
    set_faults(emulator, {"batch_processing_seconds": 3600})
    (batch,) = services.classification_day_submit(for_date=day)
    services.batches_poll_open()
    assert ClassificationBatch.objects.get(pk=batch.pk).upstream_status == "in_progress"

    get_client().messages.batches.cancel(batch.anthropic_batch_id)
    set_faults(emulator, {"batch_processing_seconds": 0})
    _wait_for_upstream_end(batch.anthropic_batch_id)
    poll_until_quiet()

    item = ClassificationBatchItem.objects.get(batch=batch)
    assert item.outcome == "canceled"
    verdict = TranscriptClassification.objects.get(conversation=conversation)
    assert (verdict.status, verdict.attempts) == (Status.CLASSIFIED, 2)


def _wait_for_upstream_end(batch_id: str) -> None:
    import time

    for _ in range(50):  # the emulator's cancel takes 0.5 s
        if get_client().messages.batches.retrieve(batch_id).processing_status == "ended":
            return
        time.sleep(0.05)
    raise AssertionError("upstream batch did not end")


def test_invalid_output_is_retried_once_with_a_clarifying_prompt(emulator, day):
    classifier_version(output_format=PROSE_OUTPUT_FORMAT)  # the emulator answers this one with prose
    conversation = conversation_on(day, BILLING_TURNS)

    services.classification_day_submit(for_date=day)
    services.batches_poll_open()
    verdict = TranscriptClassification.objects.get(conversation=conversation)
    assert verdict.status == Status.PENDING and verdict.needs_clarification
    assert verdict.raw_output and verdict.last_error.startswith("invalid_output")

    poll_until_quiet()

    verdict.refresh_from_db()
    assert (verdict.status, verdict.category, verdict.attempts) == (Status.CLASSIFIED, "billing", 2)
    second = ClassificationBatchItem.objects.get(classification=verdict, attempt=2)
    assert second.clarifying
    sent = [r for r in received_requests(emulator) if r.get("path", "").endswith("/v1/messages/batches")]
    assert CLARIFYING_INSTRUCTION in _user_text(sent[-1]["body"]["requests"][0])
    assert CLARIFYING_INSTRUCTION not in _user_text(sent[0]["body"]["requests"][0])


def _user_text(request: dict) -> str:
    content = request["params"]["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(block.get("text", "") for block in content)


def test_invalid_output_twice_is_unclassifiable_with_the_raw_text_kept(emulator, day):
    # Asks for an extra key the schema forbids: valid JSON, invalid classification, every time.
    classifier_version(
        output_format='Respond with ONLY a JSON object: {"category": "billing|account|technical|other", '
        '"priority": "low|high"}'
    )
    conversation = conversation_on(day, BILLING_TURNS)

    services.classification_day_submit(for_date=day)
    poll_until_quiet()

    verdict = TranscriptClassification.objects.get(conversation=conversation)
    assert (verdict.status, verdict.attempts) == (Status.UNCLASSIFIABLE, 2)
    assert '"priority"' in verdict.raw_output
    assert verdict.last_error.startswith("invalid_output")
    assert LLMCall.objects.filter(is_batch=True, error_type="invalid_output").count() == 2


class SimulatedCrash(Exception):
    pass


def test_a_crash_after_create_does_not_submit_twice(emulator, classifier, day, settings, monkeypatch):
    settings.TRIAGE_SUBMIT_GRACE_SECONDS = 0
    conversation_on(day, BILLING_TURNS)
    conversation_on(day, UNRESOLVED_TURNS)

    def crash(**kwargs):
        raise SimulatedCrash("killed after batches.create returned")

    with monkeypatch.context() as patch:
        patch.setattr(services, "_batch_mark_submitted", crash)
        with pytest.raises(SimulatedCrash):
            services.classification_day_submit(for_date=day)

    batch = ClassificationBatch.objects.get()
    assert batch.status == "preparing" and batch.anthropic_batch_id is None
    assert len(upstream_batches()) == 1

    # Restart: the nightly task runs again and the poll reconciles.
    services.classification_day_submit(for_date=day)
    poll_until_quiet()

    (upstream,) = upstream_batches()  # still exactly one upstream batch
    batch.refresh_from_db()
    assert (batch.status, batch.anthropic_batch_id) == ("ingested", upstream.id)
    assert TranscriptClassification.objects.filter(status=Status.CLASSIFIED).count() == 2
    assert LLMCall.objects.filter(is_batch=True).count() == 2


def test_an_unverifiable_upstream_batch_is_waited_for_not_duplicated(emulator, classifier, day, settings, monkeypatch):
    settings.TRIAGE_SUBMIT_GRACE_SECONDS = 0
    conversation_on(day, BILLING_TURNS)
    set_faults(emulator, {"batch_processing_seconds": 3600})
    with monkeypatch.context() as patch:
        patch.setattr(services, "_batch_mark_submitted", lambda **kwargs: (_ for _ in ()).throw(SimulatedCrash()))
        with pytest.raises(SimulatedCrash):
            services.classification_day_submit(for_date=day)

    services.batches_poll_open()
    services.batches_poll_open()
    # Still processing upstream: its custom_ids cannot be read yet, so nothing is sent again.
    assert len(upstream_batches()) == 1
    assert ClassificationBatch.objects.get().status == "preparing"


def test_ingesting_the_same_results_again_changes_nothing(emulator, classifier, day):
    conversation_on(day, BILLING_TURNS)
    conversation_on(day, UNRESOLVED_TURNS)
    (batch,) = services.classification_day_submit(for_date=day)
    services.batches_poll_open()
    before = list(TranscriptClassification.objects.order_by("id").values())
    calls = LLMCall.objects.count()

    # As if the process died after storing the results but before closing the batch.
    ClassificationBatch.objects.filter(pk=batch.pk).update(status="submitted")
    services.batches_poll_open()
    services.batch_ingest(batch_id=batch.pk)

    assert LLMCall.objects.count() == calls
    assert list(TranscriptClassification.objects.order_by("id").values()) == before
    assert ClassificationBatch.objects.get(pk=batch.pk).status == "ingested"


def test_enqueueing_twice_and_submitting_twice_sends_each_conversation_once(emulator, classifier, day):
    conversation_on(day, BILLING_TURNS)
    services.classification_day_submit(for_date=day)
    services.classification_day_submit(for_date=day)
    assert len(upstream_batches()) == 1
    assert ClassificationBatchItem.objects.count() == 1
