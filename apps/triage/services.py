"""Writes for the nightly classification: enqueue a day, prepare batches, submit, poll, ingest, requeue.

Crash safety rests on three rules:
1. A batch and its items are written (status "preparing") in one transaction *before* the API call, and the
   classifications they carry leave "pending" in that same transaction: nothing can be sent twice by two
   preparers, and nothing sent is unknown locally.
2. `submit_attempted_at` is set (committed) before `batches.create`, which runs without SDK retries. A preparing
   batch with it set may exist upstream, so it is reconciled against `batches.list` (matched by the local batch
   id in its custom_ids) before it is ever sent again.
3. Each item's effects (classification, LLMCall) are written in the same transaction as its `ingested_at`,
   guarded by `ingested_at IS NULL`: re-reading results is a no-op and nothing is counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import islice
from typing import Any

import anthropic
from django.db import connections, models, router, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.llm.types import PromptParts
from apps.triage import gap_drafts, selectors
from apps.triage.batching import RequestBuilder, batch_result_error_type, classifier_prompt, custom_id_for
from apps.triage.conf import attempts_spent, batch_limits, triage_setting
from apps.triage.models import (
    ClassificationBatch,
    ClassificationBatchItem,
    KnowledgeGapDraft,
    TranscriptClassification,
)
from apps.triage.schema import InvalidClassification, classification_parse

logger = logging.getLogger(__name__)

CHUNK = 500  # rows per query / transaction while preparing and ingesting
# When reconciling, upstream batches created this long before our create call are still considered (clock skew).
RECONCILE_SKEW = timedelta(minutes=5)
# custom_ids are sized with the widest batch id we could get, so a batch never outgrows its byte limit.
_SIZING_BATCH_ID = 10**12

Status = TranscriptClassification.Status
BatchStatus = ClassificationBatch.Status
Outcome = ClassificationBatchItem.Outcome
DraftStatus = KnowledgeGapDraft.Status


def _chunked(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _client() -> anthropic.Anthropic:
    from apps.llm.clients import get_client

    return get_client()


# --- enqueue and prepare -------------------------------------------------------------------------------------


def classifications_enqueue(*, for_date: date) -> int:
    """Create a pending classification for each finished conversation of `for_date` that has none. Returns how
    many were created; running it twice creates nothing more."""
    created = 0
    conversation_ids = selectors.conversations_finished_on(for_date=for_date).values_list("pk", flat=True)
    for chunk in _chunked(conversation_ids.iterator(chunk_size=2000), 2000):
        rows = [TranscriptClassification(conversation_id=pk, for_date=for_date) for pk in chunk]
        existing = set(
            TranscriptClassification.objects.filter(for_date=for_date, conversation_id__in=chunk).values_list(
                "conversation_id", flat=True
            )
        )
        rows = [row for row in rows if row.conversation_id not in existing]
        TranscriptClassification.objects.bulk_create(rows, ignore_conflicts=True)
        created += len(rows)
    return created


@dataclass
class _BatchPlan:
    """What will go into one batch: ids and sizes only, never the requests themselves."""

    entries: list[tuple[int, int, bool, str]] = field(default_factory=list)  # classification, attempt, clarify, model
    size_bytes: int = 2 + len('{"requests":[]}')


def batches_prepare(*, for_date: date, prompt: PromptParts | None = None) -> list[ClassificationBatch]:
    """Split the pending classifications of `for_date` into batches within the request and byte limits, and
    write each batch with its items (status "preparing"). Returns the new batches.

    Raises ApplicationError(code="classifier_prompt_missing") when no classifier prompt is active.
    """
    pending = TranscriptClassification.objects.filter(for_date=for_date, status=Status.PENDING)
    if not pending.exists():
        return []
    prompt = prompt or classifier_prompt()
    builder = RequestBuilder(prompt)
    max_requests, max_bytes = batch_limits()
    batches: list[ClassificationBatch] = []
    plan = _BatchPlan()
    ids = list(pending.order_by("id").values_list("pk", flat=True))
    for id_chunk in _chunked(ids, CHUNK):
        chunk = list(TranscriptClassification.objects.filter(pk__in=id_chunk, status=Status.PENDING).order_by("id"))
        for transcript in selectors.transcripts_for_classifications(chunk, attempt_offset=1):
            request = builder.build(transcript, batch_id=_SIZING_BATCH_ID)
            size = builder.size(request)
            if plan.entries and (len(plan.entries) >= max_requests or plan.size_bytes + size > max_bytes):
                batches.extend(_batch_write(plan=plan, for_date=for_date, prompt=prompt))
                plan = _BatchPlan()
            plan.entries.append(
                (transcript.classification_id, transcript.attempt, transcript.clarifying, request["params"]["model"])
            )
            plan.size_bytes += size
    if plan.entries:
        batches.extend(_batch_write(plan=plan, for_date=for_date, prompt=prompt))
    return batches


def _batch_write(*, plan: _BatchPlan, for_date: date, prompt: PromptParts) -> list[ClassificationBatch]:
    """Write one planned batch and move its classifications to "submitted", all or nothing.

    If another process claimed any of these classifications meanwhile, the transaction is rolled back and the
    batch dropped: those conversations are already on their way.
    """
    classification_ids = [entry[0] for entry in plan.entries]
    with transaction.atomic():
        claimed = TranscriptClassification.objects.filter(pk__in=classification_ids, status=Status.PENDING).update(
            status=Status.SUBMITTED,
            attempts=F("attempts") + 1,
            needs_clarification=False,
            prompt_version=prompt.version,
            prompt_version_id=prompt.version_id,
            updated_at=timezone.now(),
        )
        if claimed != len(classification_ids):
            transaction.set_rollback(True)
            logger.warning(
                "triage batch dropped: classifications were claimed concurrently", extra={"date": str(for_date)}
            )
            return []
        batch = ClassificationBatch.objects.create(
            for_date=for_date,
            request_count=len(plan.entries),
            size_bytes=plan.size_bytes,
            prompt_slug=prompt.slug,
            prompt_version=prompt.version,
            prompt_version_id=prompt.version_id,
        )
        ClassificationBatchItem.objects.bulk_create(
            (
                ClassificationBatchItem(
                    batch=batch,
                    classification_id=classification_id,
                    attempt=attempt,
                    clarifying=clarifying,
                    model=model,
                    custom_id=custom_id_for(batch_id=batch.pk, classification_id=classification_id, attempt=attempt),
                )
                for classification_id, attempt, clarifying, model in plan.entries
            ),
            batch_size=CHUNK,
        )
    return [batch]


# --- submit and reconcile ------------------------------------------------------------------------------------


def _batch_requests(batch: ClassificationBatch, prompt: PromptParts) -> Iterator[dict[str, Any]]:
    """The batch's requests, rendered again chunk by chunk from the stored items (same ids, same attempts)."""
    if batch.kind == ClassificationBatch.Kind.GAP_DRAFTS:
        yield from gap_drafts.batch_requests(batch)
        return
    builder = RequestBuilder(prompt)
    items = ClassificationBatchItem.objects.filter(batch=batch).select_related("classification").order_by("id")
    for chunk in _chunked(items.iterator(chunk_size=CHUNK), CHUNK):
        by_classification = {item.classification_id: item for item in chunk}
        classifications = []
        for item in chunk:
            # Render from the item, not the classification's live counters.
            item.classification.attempts = item.attempt
            item.classification.needs_clarification = item.clarifying
            classifications.append(item.classification)
        for transcript in selectors.transcripts_for_classifications(classifications, attempt_offset=0):
            request = builder.build(transcript, batch_id=batch.pk)
            request["custom_id"] = by_classification[transcript.classification_id].custom_id
            yield request


def _batch_prompt(batch: ClassificationBatch) -> PromptParts:
    if batch.kind == ClassificationBatch.Kind.GAP_DRAFTS:
        return gap_drafts.drafter_prompt(knowledge_snapshot_id=batch.knowledge_snapshot_id)
    return classifier_prompt(version_id=batch.prompt_version_id)


def batch_submit(*, batch_id: int) -> ClassificationBatch:
    """Send a preparing batch upstream, unless it is (or may be) there already. Safe to call any number of times.

    Raises anthropic.APIError when the create call fails (the batch stays "preparing" and is reconciled, then
    re-sent, by a later poll).
    """
    batch = ClassificationBatch.objects.get(pk=batch_id)
    if batch.status != BatchStatus.PREPARING:
        return batch
    previous_attempt = batch.submit_attempted_at
    if previous_attempt is not None:
        grace = timedelta(seconds=float(triage_setting("TRIAGE_SUBMIT_GRACE_SECONDS")))
        if timezone.now() - previous_attempt < grace:
            return batch  # possibly still in flight in another process
        found = _upstream_batch_find(batch)
        if found == "wait":
            return batch
        if found is not None:
            logger.info("triage batch reconciled", extra={"batch": batch.pk, "upstream": found.id})
            return _batch_mark_submitted(batch=batch, upstream=found)
    # Claim the attempt: only one process gets past this compare-and-set.
    now = timezone.now()
    claimed = ClassificationBatch.objects.filter(
        pk=batch.pk, status=BatchStatus.PREPARING, submit_attempted_at=previous_attempt
    ).update(submit_attempted_at=now)
    if not claimed:
        batch.refresh_from_db()
        return batch
    batch.submit_attempted_at = now
    prompt = _batch_prompt(batch)
    # No SDK retries: a retried create whose first try reached the server would create a second batch.
    # A failed create is reconciled and re-sent by the next poll instead.
    client = _client().with_options(max_retries=0, timeout=float(triage_setting("TRIAGE_SUBMIT_TIMEOUT_SECONDS")))
    upstream = client.messages.batches.create(requests=list(_batch_requests(batch, prompt)))
    return _batch_mark_submitted(batch=batch, upstream=upstream)


def _batch_mark_submitted(*, batch: ClassificationBatch, upstream: Any) -> ClassificationBatch:
    batch.anthropic_batch_id = upstream.id
    batch.status = BatchStatus.SUBMITTED
    batch.submitted_at = timezone.now()
    batch.upstream_status = upstream.processing_status
    batch.request_counts = upstream.request_counts.model_dump()
    batch.save(update_fields=["anthropic_batch_id", "status", "submitted_at", "upstream_status", "request_counts"])
    return batch


def _upstream_batch_find(batch: ClassificationBatch) -> Any:
    """The upstream batch a crashed submission created, None when there is none, or "wait" when an unclaimed
    upstream batch of the right size is still processing (its custom_ids are unreadable until it ends, and
    sending ours again could duplicate it)."""
    client = _client()
    since = batch.submit_attempted_at - RECONCILE_SKEW
    known = set(
        ClassificationBatch.objects.exclude(anthropic_batch_id=None).values_list("anthropic_batch_id", flat=True)
    )
    for upstream in client.messages.batches.list(limit=100):  # newest first; the page iterator follows cursors
        if upstream.created_at < since:
            break
        if upstream.id in known:
            continue
        counts = upstream.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        if total != batch.request_count:
            continue
        if upstream.processing_status != "ended":
            return "wait"
        results = client.messages.batches.results(upstream.id)
        try:
            first = next(iter(results), None)
        finally:
            results.close()
        if first is not None and first.custom_id.startswith(batch.custom_id_prefix):
            return upstream
    return None


# --- poll and ingest -----------------------------------------------------------------------------------------


def batch_poll(*, batch_id: int) -> ClassificationBatch:
    """Refresh a submitted batch's status; when it has ended, ingest its results. Safe to run twice.

    Raises anthropic.APIError on transport failures (the next poll tries again).
    """
    batch = ClassificationBatch.objects.get(pk=batch_id)
    if batch.status != BatchStatus.SUBMITTED:
        return batch
    try:
        upstream = _client().messages.batches.retrieve(batch.anthropic_batch_id)
    except anthropic.NotFoundError:
        # Deleted upstream, or its results aged out: nothing more will come; send the items again.
        logger.warning("triage batch lost upstream", extra={"batch": batch.pk, "upstream": batch.anthropic_batch_id})
        return _batch_close(batch=batch, status=BatchStatus.FAILED, reason="batch_lost")
    batch.upstream_status = upstream.processing_status
    batch.request_counts = upstream.request_counts.model_dump()
    batch.save(update_fields=["upstream_status", "request_counts"])
    if upstream.processing_status != "ended":
        return batch
    if batch.ended_at is None:
        batch.ended_at = upstream.ended_at or timezone.now()
        batch.save(update_fields=["ended_at"])
    return batch_ingest(batch_id=batch.pk)


def batch_ingest(*, batch_id: int) -> ClassificationBatch:
    """Stream an ended batch's results (any order), store each once, requeue failures, then close the batch.

    Re-running it (after a crash half-way, or on an already ingested batch) changes nothing already stored.
    Raises anthropic.APIError when the results cannot be read (the next poll tries again).
    """
    batch = ClassificationBatch.objects.get(pk=batch_id)
    if batch.status != BatchStatus.SUBMITTED:
        return batch
    prompt = _batch_prompt(batch)
    results = _client().messages.batches.results(batch.anthropic_batch_id)
    try:
        for chunk in _chunked(results, CHUNK):
            _results_apply(batch=batch, results=chunk, prompt=prompt)
    finally:
        results.close()
    return _batch_close(batch=batch, status=BatchStatus.INGESTED, reason="missing_result")


_CLASSIFICATION_RESULT_FIELDS = [
    "status",
    "category",
    "resolved",
    "sentiment",
    "escalation_needed",
    "language",
    "summary",
    "knowledge_gap",
    "gap_topic",
    "cx_score",
    "model",
    "raw_output",
    "last_error",
    "needs_clarification",
    "updated_at",
]


def _results_apply(*, batch: ClassificationBatch, results: list[Any], prompt: PromptParts) -> None:
    """Store one chunk of results in one transaction: the items still waiting are locked, changed in memory,
    then written with two bulk updates (the LLMCall rows are one insert each). A drafting batch's few items
    each save their draft (and write its article) instead."""
    by_custom_id = {result.custom_id: result for result in results}
    drafts = batch.kind == ClassificationBatch.Kind.GAP_DRAFTS
    with transaction.atomic():
        # Only the items are locked (`of`): PostgreSQL cannot lock the nullable side of the outer join to the
        # classification or draft, and an item's lock already makes its ingestion single.
        items = list(
            ClassificationBatchItem.objects.select_for_update(of=("self",))
            .select_related("gap_draft" if drafts else "classification")
            .filter(batch=batch, custom_id__in=list(by_custom_id), ingested_at__isnull=True)
        )
        now = timezone.now()
        for item in items:
            result = by_custom_id[item.custom_id].result
            if drafts:
                gap_drafts.result_apply(item=item, result=result, prompt=prompt)
            else:
                _result_apply(item=item, result=result, prompt=prompt)
                item.classification.updated_at = now
            item.ingested_at = now
        _rows_update(ClassificationBatchItem, items, ["outcome", "ingested_at", "llm_call"])
        if not drafts:
            classifications = [item.classification for item in items]
            _rows_update(TranscriptClassification, classifications, _CLASSIFICATION_RESULT_FIELDS)


def _rows_update(model: type[models.Model], objs: list[models.Model], fields: list[str]) -> None:
    """One `UPDATE … WHERE pk = %s` per object, sent with executemany.

    `bulk_update` builds a CASE expression per field and row, which costs more CPU than the database work at
    10,000 rows; executemany keeps it to one prepared statement. Values go through each field's
    get_db_prep_save, exactly as `save()` would write them.
    """
    if not objs:
        return
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    columns = [model._meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    # Identifiers come from model metadata (quoted); every value is a query parameter.
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"  # noqa: S608
    rows = [
        [column.get_db_prep_save(getattr(obj, column.attname), connection=connection) for column in columns] + [obj.pk]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _result_apply(*, item: ClassificationBatchItem, result: Any, prompt: PromptParts) -> None:
    """Apply one result to a locked, not yet ingested item and its classification, in memory (the caller saves
    both) — except the LLMCall row, which batch_result_record inserts."""
    from apps.llm.batch import batch_result_record, message_text

    classification = item.classification
    message = result.message if result.type == "succeeded" else None
    error_type = ""
    if message is not None:
        text = message_text(message)
        try:
            parsed = classification_parse(text)
        except InvalidClassification as exc:
            error_type = "invalid_output"
            item.outcome = Outcome.INVALID
            _classification_invalid(classification=classification, item=item, raw=text, reason=str(exc))
        else:
            item.outcome = Outcome.SUCCEEDED
            _classification_store(classification=classification, parsed=parsed, raw=text, model=message.model)
    else:
        item.outcome = result.type if result.type in Outcome.values else Outcome.ERRORED
        error_type = batch_result_error_type(result)
        _classification_requeue(classification=classification, reason=error_type, save=False)
    if result.type in ("succeeded", "errored"):
        # Expired and canceled requests never ran: nothing to price, nothing to log as an attempt.
        item.llm_call = batch_result_record(
            custom_id=item.custom_id,
            model=message.model if message is not None else item.model,
            message=message,
            prompt=prompt,
            conversation_id=str(classification.conversation_id),
            error_type=error_type,
        )


def _classification_store(*, classification: TranscriptClassification, parsed: Any, raw: str, model: str) -> None:
    classification.status = Status.CLASSIFIED
    classification.category = parsed.category
    classification.resolved = parsed.resolved
    classification.sentiment = parsed.sentiment
    classification.escalation_needed = parsed.escalation_needed
    classification.language = parsed.language
    classification.summary = parsed.summary[:300]
    classification.knowledge_gap = parsed.knowledge_gap
    classification.gap_topic = gap_topic_normalise(parsed.gap_topic) if parsed.knowledge_gap else ""
    classification.cx_score = parsed.cx_score
    classification.model = model
    classification.raw_output = raw
    classification.last_error = ""
    classification.needs_clarification = False


def _classification_invalid(
    *, classification: TranscriptClassification, item: ClassificationBatchItem, raw: str, reason: str
) -> None:
    """Invalid output gets one more try, with the clarifying instruction; a second invalid answer is final."""
    classification.raw_output = raw
    classification.last_error = f"invalid_output: {reason}"[:200]
    if item.clarifying or attempts_spent(classification.attempts):
        classification.status = Status.UNCLASSIFIABLE
        classification.needs_clarification = False
    else:
        classification.status = Status.PENDING
        classification.needs_clarification = True


def _classification_requeue(*, classification: TranscriptClassification, reason: str, save: bool = True) -> None:
    """Errored, expired, canceled or lost: back to pending for the next run, until attempts run out."""
    classification.last_error = reason[:200]
    if attempts_spent(classification.attempts):
        classification.status = Status.UNCLASSIFIABLE
    else:
        classification.status = Status.PENDING
    if save:
        classification.save(update_fields=["status", "last_error", "updated_at"])


def _batch_close(*, batch: ClassificationBatch, status: str, reason: str) -> ClassificationBatch:
    """Requeue whatever got no result, then close the batch (one transaction, so a crash re-runs it whole)."""
    with transaction.atomic():
        leftovers = (
            ClassificationBatchItem.objects.select_for_update(of=("self",))
            .select_related("classification", "gap_draft")
            .filter(batch=batch, ingested_at__isnull=True)
        )
        now = timezone.now()
        for item in leftovers:
            item.outcome = Outcome.MISSING
            item.ingested_at = now
            item.save(update_fields=["outcome", "ingested_at"])
            if item.gap_draft is not None:
                gap_drafts.draft_requeue(draft=item.gap_draft, reason=reason)
            else:
                _classification_requeue(classification=item.classification, reason=reason)
        batch.status = status
        batch.ingested_at = now
        batch.save(update_fields=["status", "ingested_at"])
    return batch


# --- the pipeline --------------------------------------------------------------------------------------------


def classification_day_submit(*, for_date: date) -> list[ClassificationBatch]:
    """Enqueue the day's finished conversations, prepare batches for everything pending and send them.

    Raises ApplicationError(code="classifier_prompt_missing"); anthropic.APIError when a create call fails
    (the batch is then re-sent by the poll).
    """
    classifications_enqueue(for_date=for_date)
    batches = batches_prepare(for_date=for_date)
    return [batch_submit(batch_id=batch.pk) for batch in batches]


@dataclass
class PollSummary:
    polled: int = 0
    ingested: int = 0
    submitted: int = 0
    reports: list[date] = field(default_factory=list)


def batches_poll_open() -> PollSummary:
    """One pass of the periodic task: re-send requeued work, reconcile and send preparing batches, poll and
    ingest submitted ones; then, for each day whose classification is now final, send the batch that drafts
    its knowledge-gap articles (and ingest it at once when it has already ended); finally write the report of
    each day that just became complete.

    Failures of one batch are logged and left for the next pass; they do not stop the others.
    """
    from apps.triage.reports import report_generate

    summary = PollSummary()
    touched_dates: set[date] = set()
    pending_dates = (
        TranscriptClassification.objects.filter(status=Status.PENDING).values_list("for_date", flat=True).distinct()
    )
    for for_date in sorted(set(pending_dates)):
        try:
            batches_prepare(for_date=for_date)
        except ApplicationError:
            logger.exception("triage: cannot prepare batches", extra={"date": str(for_date)})
    draft_dates = KnowledgeGapDraft.objects.filter(status=DraftStatus.PENDING).values_list("for_date", flat=True)
    for for_date in sorted(set(draft_dates)):
        gap_drafts.gap_draft_batches_prepare(for_date=for_date)
    _batches_advance(list(selectors.batches_open()), summary=summary, touched_dates=touched_dates)
    # The drafts need the day's gap topics, so they go in a batch of their own once classification is final.
    new_batches = []
    for for_date in selectors.gap_draft_dates_due():
        gap_drafts.gap_drafts_enqueue(for_date=for_date)
        new_batches += gap_drafts.gap_draft_batches_prepare(for_date=for_date)
        touched_dates.add(for_date)
    _batches_advance(new_batches, summary=summary, touched_dates=touched_dates, poll_after_submit=True)
    for for_date in sorted(touched_dates):
        if selectors.day_is_complete(for_date=for_date):
            report_generate(for_date=for_date)
            summary.reports.append(for_date)
    return summary


def _batches_advance(
    batches: list[ClassificationBatch],
    *,
    summary: PollSummary,
    touched_dates: set[date],
    poll_after_submit: bool = False,
) -> None:
    """Send preparing batches, poll submitted ones (and, with `poll_after_submit`, a batch just sent: a small
    drafting batch may already have ended), recording the days of the batches that closed."""
    for batch in batches:
        try:
            if batch.status == BatchStatus.PREPARING:
                batch = batch_submit(batch_id=batch.pk)
                summary.submitted += int(batch.status == BatchStatus.SUBMITTED)
                if not poll_after_submit:
                    continue
            if batch.status == BatchStatus.SUBMITTED:
                summary.polled += 1
                batch = batch_poll(batch_id=batch.pk)
                if batch.status in (BatchStatus.INGESTED, BatchStatus.FAILED):
                    summary.ingested += 1
                    touched_dates.add(batch.for_date)
        except anthropic.APIError:
            logger.exception("triage batch step failed; retrying on the next poll", extra={"batch": batch.pk})


# --- knowledge gaps ------------------------------------------------------------------------------------------

_TOPIC_EDGES = " \t.,;:!?\"'`()[]"


def gap_topic_normalise(topic: str) -> str:
    """One spelling per topic, so the report groups "Exporting invoices to Xero." with "exporting invoices to xero"."""
    return " ".join(topic.split()).strip(_TOPIC_EDGES).lower()[:80]


def knowledge_gap_draft_create(*, for_date: date, topic: str, actor=None):
    """Turn one of the report's knowledge-gap groups into a draft article for staff to write and publish.

    The draft lists what customers asked (the classifier's summaries, already masked of personal data) and
    is never served: only published articles reach a snapshot. A topic drafted once (on any day) returns the
    same article, and the day's conversations of the group are linked to it.
    Raises NotFound when the day has no gap with that topic.
    """
    from apps.core.exceptions import NotFound
    from apps.knowledge.models import Article
    from apps.knowledge.services import article_create

    key = "" if topic == selectors.UNSPECIFIED_GAP else gap_topic_normalise(topic)
    with transaction.atomic():
        group = list(
            TranscriptClassification.objects.select_for_update()
            .filter(for_date=for_date, status=Status.CLASSIFIED, knowledge_gap=True, gap_topic=key)
            .order_by("id")
        )
        if not group:
            raise NotFound("No knowledge gap with that topic on that day.")
        # The group's own draft first; then, for a named topic, one made from it on another day.
        existing = max((row.gap_article_id for row in group if row.gap_article_id), default=None)
        if existing is None and key:
            existing = (
                TranscriptClassification.objects.filter(gap_topic=key, gap_article__isnull=False)
                .order_by("-gap_article_id")
                .values_list("gap_article_id", flat=True)
                .first()
            )
        article = Article.objects.filter(pk=existing).first() if existing else None
        if article is None and key:
            # The nightly drafting's article for the topic, when it made one before the group was linked.
            article = Article.objects.filter(external_id=selectors.gap_article_external_id(key)).first()
        if article is None:
            article = article_create(
                actor=actor,
                title=(key or "Unanswered questions")[:1].upper() + (key or "Unanswered questions")[1:],
                body=_gap_draft_body(for_date=for_date, group=group),
                language="en",
                tags=["knowledge-gap"],
                status=Article.Status.DRAFT,
                # Named topics share one article with the nightly drafting, which never overwrites this one.
                external_id=selectors.gap_article_external_id(key) if key else "",
            )
        TranscriptClassification.objects.filter(pk__in=[row.pk for row in group], gap_article__isnull=True).update(
            gap_article=article, updated_at=timezone.now()
        )
    return article


def _gap_draft_body(*, for_date: date, group: list[TranscriptClassification]) -> str:
    asked = "\n".join(f"- {row.summary} (conversation {row.conversation_id})" for row in group[:20])
    languages = ", ".join(sorted({row.language for row in group if row.language})) or "unknown"
    return (
        "<!-- Draft from the knowledge-gap report of "
        f"{for_date.isoformat()}: {len(group)} conversation(s) ({languages}) asked this and the help centre had "
        "no answer. Replace this comment and the list below with the answer, then publish. -->\n\n"
        f"## What customers asked\n\n{asked}\n\n## Answer\n\nTo be written.\n"
    )
