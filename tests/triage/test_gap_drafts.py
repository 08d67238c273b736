"""The nightly batch drafts a candidate article per knowledge-gap topic (real SDK, emulator over HTTP).

Drafts are draft articles only: nothing reaches customers until a person publishes, and a later night never
overwrites what a person published or edited.
"""

import json
import re
from datetime import timedelta

import pytest

from apps.knowledge.models import Article, KnowledgeSnapshot
from apps.knowledge.services import article_create, article_publish, article_update, snapshot_content
from apps.llm.models import LLMCall
from apps.llm.pricing import cost_usd
from apps.triage import services
from apps.triage.drafting import CLARIFYING_INSTRUCTION, DRAFTER_SLUG
from apps.triage.models import (
    ClassificationBatch,
    ClassificationBatchItem,
    DailyReport,
    KnowledgeGapDraft,
    TranscriptClassification,
)
from tests.conftest import received_requests, set_faults
from tests.triage.factories import BILLING_TURNS, conversation_on
from tests.triage.test_knowledge_gaps import GERMAN_GAP_TURNS, NOT_FOUND_ANSWER, XERO_AGAIN_TURNS, XERO_TURNS

pytestmark = pytest.mark.django_db

XERO = "export invoices xero"
XERO_WITH_EMAIL_TURNS = [
    ("user", "Can I export my invoices into Xero? Send it to jo.doe@example.com please."),
    ("assistant", NOT_FOUND_ANSWER),
]
Draft = KnowledgeGapDraft.Status


@pytest.fixture
def drafting(settings):
    """The test days are in the past: let drafting reach them."""
    settings.TRIAGE_GAP_DRAFT_DAYS = 3650


def run_night(max_passes: int = 10) -> list:
    """The periodic task until the day's classification, drafting and report are done."""
    reports = []
    for _ in range(max_passes):
        reports += services.batches_poll_open().reports
        busy = ClassificationBatch.objects.filter(status__in=["preparing", "submitted"]).exists()
        if not busy and not KnowledgeGapDraft.objects.filter(status__in=[Draft.PENDING, Draft.SUBMITTED]).exists():
            return reports
    raise AssertionError("the pipeline did not settle")


def draft_requests(upstream) -> list[dict]:
    sent = [r for r in received_requests(upstream, limit=200) if r.get("path", "").endswith("/v1/messages/batches")]
    return [
        request
        for body in sent
        if isinstance(body.get("body"), dict)
        for request in body["body"]["requests"]
        if re.fullmatch(r"tb\d+-g\d+-a\d+", request["custom_id"])
    ]


def user_text(request: dict) -> str:
    content = request["params"]["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(block.get("text", "") for block in content)


def test_the_nightly_batch_drafts_one_unpublished_article_per_gap_topic(emulator, classifier, day, drafting):
    invoices = article_create(
        title="Invoices", body="Open Billing, then Invoices, to download every invoice.", status="published"
    )
    served = snapshot_content()
    first = conversation_on(day, XERO_TURNS)
    conversation_on(day, XERO_WITH_EMAIL_TURNS)
    conversation_on(day, GERMAN_GAP_TURNS)
    conversation_on(day, BILLING_TURNS)

    services.classification_day_submit(for_date=day)
    reports = run_night()

    # The report waits for the drafts, and is written once.
    assert reports == [day]
    drafts = {draft.topic: draft for draft in KnowledgeGapDraft.objects.filter(for_date=day)}
    german_topic = TranscriptClassification.objects.get(conversation__messages__text__startswith="Gibt es").gap_topic
    assert set(drafts) == {XERO, german_topic}
    assert {draft.status for draft in drafts.values()} == {Draft.DRAFTED}
    xero = drafts[XERO].article
    assert (xero.status, xero.tags, xero.language) == ("draft", ["knowledge-gap"], "en")
    assert xero.title == "Export invoices xero"
    assert xero.external_id == f"knowledge-gap:{XERO}"
    assert "Can I export my invoices straight into Xero?" in xero.body
    assert "[[TO CONFIRM" in xero.body
    assert "Invoices" in xero.body  # the related article is linked, not repeated
    assert drafts[german_topic].article.language == "de"
    # Nothing is served until a person publishes.
    assert snapshot_content() == served
    assert list(Article.objects.filter(status="published")) == [invoices]
    # The group's conversations point at their draft; the report shows it awaiting review.
    assert TranscriptClassification.objects.get(conversation=first).gap_article == xero
    groups = {group["topic"]: group for group in DailyReport.objects.get(date=day).data["knowledge_gaps"]["groups"]}
    assert (groups[XERO]["article_id"], groups[XERO]["article_status"], groups[XERO]["draft_status"]) == (
        xero.pk,
        "draft",
        "drafted",
    )

    # What was sent: one structured-output request per topic, questions masked, the related article included.
    requests = draft_requests(emulator)
    assert len(requests) == 2
    xero_request = next(r for r in requests if f'topic="{XERO}"' in user_text(r))
    assert xero_request["params"]["output_config"]["format"]["type"] == "json_schema"
    assert set(xero_request["params"]["output_config"]["format"]["schema"]["required"]) == {"title", "body", "language"}
    assert "jo.doe@example.com" not in user_text(xero_request) and "[email]" in user_text(xero_request)
    assert 'title="Invoices"' in user_text(xero_request)
    # Each call names the knowledge snapshot its related articles came from.
    snapshots = set(LLMCall.objects.filter(prompt_slug=DRAFTER_SLUG).values_list("knowledge_snapshot_id", flat=True))
    assert snapshots == {KnowledgeSnapshot.objects.latest().pk}


def test_each_draft_call_is_logged_at_the_batch_discount_and_counted_in_the_days_cost(
    emulator, classifier, day, drafting
):
    conversation_on(day, XERO_TURNS)
    services.classification_day_submit(for_date=day)
    run_night()

    item = ClassificationBatchItem.objects.get(gap_draft__isnull=False)
    call = item.llm_call
    assert (call.prompt_slug, call.is_batch, call.request_id, call.status) == (DRAFTER_SLUG, True, item.custom_id, "ok")
    assert call.task_type == "article_draft"  # apart from the classification calls in metrics and routing
    full = cost_usd(
        model=call.model,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_creation_input_tokens=call.cache_creation_input_tokens,
        cache_read_input_tokens=call.cache_read_input_tokens,
    )
    assert call.cost_usd > 0 and call.cost_usd == cost_usd(
        model=call.model,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_creation_input_tokens=call.cache_creation_input_tokens,
        cache_read_input_tokens=call.cache_read_input_tokens,
        batch=True,
    )
    assert call.cost_usd < full
    data = DailyReport.objects.get(date=day).data
    (drafter,) = [row for row in data["prompt_versions"] if row["slug"] == DRAFTER_SLUG]
    assert (drafter["calls"], drafter["cost_usd"]) == (1, f"{call.cost_usd:.6f}")


def test_a_later_night_rewrites_the_same_draft_but_never_a_persons_edit(emulator, classifier, day, drafting):
    conversation_on(day, XERO_TURNS)
    services.classification_day_submit(for_date=day)
    run_night()
    article = KnowledgeGapDraft.objects.get(for_date=day).article

    second_day = day + timedelta(days=1)
    conversation_on(second_day, XERO_WITH_EMAIL_TURNS)
    services.classification_day_submit(for_date=second_day)
    run_night()

    again = KnowledgeGapDraft.objects.get(for_date=second_day)
    assert (again.status, again.article_id) == (Draft.DRAFTED, article.pk)
    assert Article.objects.count() == 1
    article.refresh_from_db()
    assert "Send it to [email] please" in article.body  # this night's questions
    assert article.status == "draft"

    article_update(article=article, body="Yes: Billing → Export → Xero. (written by a person)")
    third_day = day + timedelta(days=2)
    conversation_on(third_day, XERO_AGAIN_TURNS)
    services.classification_day_submit(for_date=third_day)
    run_night()

    kept = KnowledgeGapDraft.objects.get(for_date=third_day)
    assert (kept.status, kept.article_id) == (Draft.SKIPPED, article.pk)
    assert "person edited" in kept.last_error and '"title"' in kept.raw_output  # the suggestion is kept
    article.refresh_from_db()
    assert article.body == "Yes: Billing → Export → Xero. (written by a person)\n"


def test_a_topic_whose_article_is_published_is_not_drafted_again(emulator, classifier, day, drafting):
    conversation_on(day, XERO_TURNS)
    services.classification_day_submit(for_date=day)
    run_night()
    article = KnowledgeGapDraft.objects.get(for_date=day).article
    article_publish(article=article)
    sent_before = len(draft_requests(emulator))

    later = day + timedelta(days=1)
    conversation_on(later, XERO_AGAIN_TURNS)
    services.classification_day_submit(for_date=later)
    assert run_night() == [later]

    skipped = KnowledgeGapDraft.objects.get(for_date=later)
    assert (skipped.status, skipped.article_id, skipped.attempts) == (Draft.SKIPPED, article.pk, 0)
    assert len(draft_requests(emulator)) == sent_before
    assert TranscriptClassification.objects.get(for_date=later).gap_article_id == article.pk


def _classified(day) -> None:
    """Classify the day (ingested) without the poll pass that would also draft."""
    (batch,) = services.classification_day_submit(for_date=day)
    services.batch_poll(batch_id=batch.pk)
    assert ClassificationBatch.objects.get(pk=batch.pk).status == "ingested"


def test_a_malformed_draft_is_asked_again_with_a_clarifying_instruction(emulator, classifier, day, drafting):
    conversation_on(day, XERO_TURNS)
    _classified(day)
    set_faults(emulator, {"batch_processing_seconds": 0, "batch_malformed_count": 1})

    services.batches_poll_open()
    draft = KnowledgeGapDraft.objects.get()
    assert (draft.status, draft.needs_clarification, draft.article) == (Draft.PENDING, True, None)
    assert draft.last_error.startswith("invalid_output: not JSON")
    assert not DailyReport.objects.filter(date=day).exists()  # the day waits for its drafts

    assert run_night() == [day]
    draft.refresh_from_db()
    assert (draft.status, draft.attempts) == (Draft.DRAFTED, 2)
    first, second = draft_requests(emulator)
    assert CLARIFYING_INSTRUCTION not in user_text(first) and CLARIFYING_INSTRUCTION in user_text(second)
    outcomes = list(ClassificationBatchItem.objects.filter(gap_draft=draft).values_list("outcome", flat=True))
    assert outcomes == ["invalid", "succeeded"]


def test_a_second_malformed_draft_fails_and_leaves_the_group_to_staff(
    emulator, classifier, day, drafting, admin_client
):
    conversation_on(day, XERO_TURNS)
    _classified(day)
    set_faults(emulator, {"batch_processing_seconds": 0, "batch_malformed_count": 2})

    assert run_night() == [day]

    draft = KnowledgeGapDraft.objects.get()
    assert (draft.status, draft.article, draft.attempts) == (Draft.FAILED, None, 2)
    assert draft.raw_output.startswith("Sure!")
    assert not Article.objects.exists()
    report = DailyReport.objects.get(date=day)
    page = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/change/").content.decode()
    assert "Draft an article" in page  # the manual action still serves the group


def test_errored_draft_requests_are_requeued_then_drafted(emulator, classifier, day, drafting):
    conversation_on(day, XERO_TURNS)
    _classified(day)
    set_faults(emulator, {"batch_processing_seconds": 0, "batch_error_rate": 1.0})

    services.batches_poll_open()
    draft = KnowledgeGapDraft.objects.get()
    assert (draft.status, draft.last_error, draft.attempts) == (Draft.PENDING, "api_error", 1)
    assert LLMCall.objects.filter(prompt_slug=DRAFTER_SLUG, status="error").count() == 1

    set_faults(emulator, {"batch_processing_seconds": 0})
    run_night()
    draft.refresh_from_db()
    assert (draft.status, draft.attempts) == (Draft.DRAFTED, 2)


def test_reading_the_drafting_results_again_changes_nothing(emulator, classifier, day, drafting):
    conversation_on(day, XERO_TURNS)
    services.classification_day_submit(for_date=day)
    run_night()
    batch = ClassificationBatch.objects.get(kind="gap_drafts")
    article = Article.objects.get()
    calls = LLMCall.objects.count()

    # As if the process died after the results were stored but before the batch was closed.
    ClassificationBatch.objects.filter(pk=batch.pk).update(status="submitted")
    services.batch_ingest(batch_id=batch.pk)

    assert ClassificationBatch.objects.get(pk=batch.pk).status == "ingested"
    assert LLMCall.objects.count() == calls
    assert list(Article.objects.all()) == [article]
    assert Article.objects.get().updated_at == article.updated_at


def test_a_restart_before_drafting_drafts_on_the_next_poll(emulator, classifier, day, drafting):
    conversation_on(day, XERO_TURNS)
    _classified(day)  # classification stored; the process "stopped" before the drafting step

    assert run_night() == [day]
    assert KnowledgeGapDraft.objects.get().status == Draft.DRAFTED


def test_old_days_and_switched_off_drafting_send_nothing(emulator, classifier, day, settings):
    conversation_on(day, XERO_TURNS)
    services.classification_day_submit(for_date=day)
    assert run_night() == [day]  # 2026-03-10 is older than TRIAGE_GAP_DRAFT_DAYS
    assert not KnowledgeGapDraft.objects.exists() and not draft_requests(emulator)

    settings.TRIAGE_GAP_DRAFT_DAYS = 3650
    settings.TRIAGE_GAP_DRAFTS = False
    later = day + timedelta(days=1)
    conversation_on(later, XERO_TURNS)
    services.classification_day_submit(for_date=later)
    assert run_night() == [later]
    assert not KnowledgeGapDraft.objects.exists()


def test_topics_beyond_the_nightly_limit_are_skipped(emulator, classifier, day, drafting, settings):
    settings.TRIAGE_GAP_DRAFT_MAX_TOPICS = 1
    conversation_on(day, XERO_TURNS)
    conversation_on(day, XERO_AGAIN_TURNS)
    conversation_on(day, GERMAN_GAP_TURNS)
    services.classification_day_submit(for_date=day)
    run_night()

    statuses = dict(KnowledgeGapDraft.objects.values_list("topic", "status"))
    assert statuses[XERO] == Draft.DRAFTED  # the largest group first
    assert sorted(statuses.values()) == [Draft.DRAFTED, Draft.SKIPPED]
    assert len(draft_requests(emulator)) == 1


def test_the_drafter_reply_is_validated_strictly():
    from apps.triage.drafting import InvalidDraft, draft_parse

    good = draft_parse('```json\n{"title": " Xero  export ", "body": "# Hi", "language": "en"}\n```')
    assert (good.title, good.body) == ("Xero export", "# Hi\n")
    for bad in (
        '{"title": "t", "body": "b", "language": "xx"}',
        '{"title": "t", "body": "  ", "language": "en"}',
        '{"title": "t", "body": "b", "language": "en", "extra": 1}',
        json.dumps({"title": "t" * 201, "body": "b", "language": "en"}),
        "Sure! Here is an article.",
    ):
        with pytest.raises(InvalidDraft):
            draft_parse(bad)
    with pytest.raises(InvalidDraft, match="cut off"):
        draft_parse('{"title": "t", "body": "b", "language": "en"}', stop_reason="max_tokens")


def test_staff_see_the_drafts_awaiting_review_in_the_report_and_the_admin(
    emulator, classifier, day, drafting, admin_client
):
    conversation_on(day, XERO_TURNS)
    services.classification_day_submit(for_date=day)
    run_night()
    report = DailyReport.objects.get(date=day)
    article = Article.objects.get()

    page = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/change/").content.decode()
    assert f"draft article #{article.pk}</a>: Export invoices xero" in page
    assert "awaiting review" in page and "drafted by the nightly batch" in page
    assert "?review=gap-drafts" in page
    rows = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/csv/").content.decode().splitlines()
    assert f"knowledge_gap_article,{XERO},{article.pk}" in rows
    assert f"knowledge_gap_article_status,{XERO},draft" in rows
    drafts = admin_client.get("/admin/triage/knowledgegapdraft/").content.decode()
    assert XERO in drafts and "awaiting review" in drafts

    # Publishing stays a person's action: once published, the report says so.
    article_publish(article=article)
    page = admin_client.get(f"/admin/triage/dailyreport/{report.pk}/change/").content.decode()
    assert "<br>published" in page and "drafted by the nightly batch" not in page


def test_a_crash_after_sending_the_drafting_batch_does_not_send_it_twice(
    emulator, classifier, day, drafting, settings, monkeypatch
):
    from apps.llm.clients import get_client

    settings.TRIAGE_SUBMIT_GRACE_SECONDS = 0
    conversation_on(day, XERO_TURNS)
    _classified(day)

    def crash(**kwargs):
        raise RuntimeError("killed after batches.create returned")

    with monkeypatch.context() as patch:
        patch.setattr(services, "_batch_mark_submitted", crash)
        with pytest.raises(RuntimeError):
            services.batches_poll_open()
    drafting_batch = ClassificationBatch.objects.get(kind="gap_drafts")
    assert drafting_batch.status == "preparing" and drafting_batch.anthropic_batch_id is None

    # Restart: the poll finds the upstream batch by its custom_ids and ingests it instead of sending it again.
    assert run_night() == [day]
    upstream = list(get_client().messages.batches.list(limit=100))
    assert len(upstream) == 2  # the classification batch and one drafting batch
    drafting_batch.refresh_from_db()
    assert drafting_batch.status == "ingested" and drafting_batch.anthropic_batch_id in {b.id for b in upstream}
    assert KnowledgeGapDraft.objects.get().status == Draft.DRAFTED
    assert LLMCall.objects.filter(prompt_slug=DRAFTER_SLUG).count() == 1
    assert len(draft_requests(emulator)) == 1
