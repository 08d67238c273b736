"""Writes for knowledge-gap drafts: enqueue a day's topics, prepare their batch, apply each result to a draft article.

The batch itself (submit, reconcile, poll, ingest, close) is the classification's machinery in services.py; this
module supplies what differs for a drafting batch: which rows it carries, how a request is rendered, and what
a result does. Nothing here publishes: an article written here is always a draft (only published articles reach
a knowledge snapshot), and an article a person published or edited is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.llm.types import PromptParts
from apps.triage import selectors
from apps.triage.batching import batch_result_error_type, gap_draft_custom_id_for
from apps.triage.conf import attempts_spent, batch_limits, triage_setting
from apps.triage.drafting import DRAFTER_PROMPT, ArticleDraft, InvalidDraft, draft_parse, draft_request_params
from apps.triage.models import ClassificationBatch, ClassificationBatchItem, KnowledgeGapDraft, TranscriptClassification

logger = logging.getLogger(__name__)

DraftStatus = KnowledgeGapDraft.Status
Outcome = ClassificationBatchItem.Outcome
GAP_TAG = "knowledge-gap"
_SIZING_BATCH_ID = 10**12


def drafter_prompt(*, knowledge_snapshot_id: int | None = None) -> PromptParts:
    """The drafter prompt (fixed in code), naming the snapshot its related articles came from."""
    return replace(DRAFTER_PROMPT, knowledge_snapshot_id=knowledge_snapshot_id)


# --- enqueue and prepare -------------------------------------------------------------------------------------


def gap_drafts_enqueue(*, for_date: date) -> list[KnowledgeGapDraft]:
    """One draft row per named gap topic of `for_date` that has none: pending, or skipped when the topic's article
    is already published (nothing to draft) or the topic is beyond TRIAGE_GAP_DRAFT_MAX_TOPICS. Running it twice
    creates nothing more. Returns the new rows."""
    topics = selectors.gap_topics_undrafted(for_date=for_date)
    limit = int(triage_setting("TRIAGE_GAP_DRAFT_MAX_TOPICS"))
    already = KnowledgeGapDraft.objects.filter(for_date=for_date).count()
    rows = []
    for index, (topic, count) in enumerate(topics):
        article = _topic_article(topic)
        row = KnowledgeGapDraft(for_date=for_date, topic=topic, conversation_count=count, article=article)
        if article is not None and article.status == article.Status.PUBLISHED:
            row.status, row.last_error = DraftStatus.SKIPPED, "the topic's article is published"
        elif already + index >= limit:
            row.status, row.last_error = DraftStatus.SKIPPED, "over TRIAGE_GAP_DRAFT_MAX_TOPICS"
        rows.append(row)
    KnowledgeGapDraft.objects.bulk_create(rows, ignore_conflicts=True)
    for row in rows:
        if row.article is not None:
            _link_group(for_date=for_date, topic=row.topic, article_id=row.article.pk)
    return rows


def _topic_article(topic: str) -> Any:
    """The article already made for `topic` (by an earlier night or by staff from the report), if any."""
    from apps.knowledge.models import Article

    article = Article.objects.filter(external_id=selectors.gap_article_external_id(topic)).first()
    if article is not None:
        return article
    linked = (
        TranscriptClassification.objects.filter(gap_topic=topic, gap_article__isnull=False)
        .order_by("-gap_article_id")
        .values_list("gap_article_id", flat=True)
        .first()
    )
    return Article.objects.filter(pk=linked).first() if linked else None


def _link_group(*, for_date: date, topic: str, article_id: int) -> None:
    TranscriptClassification.objects.filter(
        for_date=for_date, gap_topic=topic, knowledge_gap=True, gap_article__isnull=True
    ).update(gap_article_id=article_id, updated_at=timezone.now())


def _route(request: dict[str, Any]) -> str:
    from apps.llm.models import TaskType
    from apps.llm.routing import route

    # Its own task type: routing rules can pick a model for drafting apart from classification.
    tokens = len(json.dumps(request)) // 4
    return route(
        task_type=TaskType.ARTICLE_DRAFT, plan_tier="", prompt_tokens=tokens, prompt_tier=DRAFTER_PROMPT.model_tier
    ).model


def gap_draft_batches_prepare(*, for_date: date) -> list[ClassificationBatch]:
    """Write the day's pending drafts into batches (status "preparing") within the request and byte limits,
    claiming them in the same transaction. Returns the new batches."""
    from apps.knowledge.selectors import snapshot_current_ref

    pending = list(KnowledgeGapDraft.objects.filter(for_date=for_date, status=DraftStatus.PENDING).order_by("id"))
    if not pending:
        return []
    snapshot = snapshot_current_ref()
    max_requests, max_bytes = batch_limits()
    plans: list[list[tuple[int, int, bool, str]]] = [[]]
    size = 0
    for request in selectors.gap_draft_requests(pending, attempt_offset=1):
        params = draft_request_params(request, model="")
        params["model"] = _route(params)
        entry_size = len(json.dumps({"custom_id": "x" * 40, "params": params})) + 2
        if plans[-1] and (len(plans[-1]) >= max_requests or size + entry_size > max_bytes):
            plans.append([])
            size = 0
        plans[-1].append((request.draft_id, request.attempt, request.clarifying, params["model"]))
        size += entry_size
    batches = []
    for plan in plans:
        batch = _batch_write(plan=plan, for_date=for_date, snapshot_id=snapshot[0] if snapshot else None)
        if batch is not None:
            batches.append(batch)
    return batches


def _batch_write(
    *, plan: list[tuple[int, int, bool, str]], for_date: date, snapshot_id: int | None
) -> ClassificationBatch | None:
    """Write one drafting batch and move its drafts to "submitted", all or nothing (None when another process
    claimed any of them meanwhile)."""
    draft_ids = [entry[0] for entry in plan]
    with transaction.atomic():
        claimed = KnowledgeGapDraft.objects.filter(pk__in=draft_ids, status=DraftStatus.PENDING).update(
            status=DraftStatus.SUBMITTED,
            attempts=F("attempts") + 1,
            needs_clarification=False,
            updated_at=timezone.now(),
        )
        if claimed != len(draft_ids):
            transaction.set_rollback(True)
            logger.warning("gap draft batch dropped: drafts were claimed concurrently", extra={"date": str(for_date)})
            return None
        batch = ClassificationBatch.objects.create(
            for_date=for_date,
            kind=ClassificationBatch.Kind.GAP_DRAFTS,
            request_count=len(plan),
            prompt_slug=DRAFTER_PROMPT.slug,
            prompt_version=DRAFTER_PROMPT.version,
            knowledge_snapshot_id=snapshot_id,
        )
        ClassificationBatchItem.objects.bulk_create(
            ClassificationBatchItem(
                batch=batch,
                gap_draft_id=draft_id,
                attempt=attempt,
                clarifying=clarifying,
                model=model,
                custom_id=gap_draft_custom_id_for(batch_id=batch.pk, draft_id=draft_id, attempt=attempt),
            )
            for draft_id, attempt, clarifying, model in plan
        )
    return batch


def batch_requests(batch: ClassificationBatch) -> Iterator[dict[str, Any]]:
    """The batch's requests, rendered again from the stored items (same ids, attempts, models)."""
    items = list(ClassificationBatchItem.objects.filter(batch=batch).select_related("gap_draft").order_by("id"))
    by_draft = {item.gap_draft_id: item for item in items}
    drafts = []
    for item in items:
        # Render from the item, not the draft's live counters.
        item.gap_draft.attempts = item.attempt
        item.gap_draft.needs_clarification = item.clarifying
        drafts.append(item.gap_draft)
    for request in selectors.gap_draft_requests(drafts, attempt_offset=0):
        item = by_draft[request.draft_id]
        yield {"custom_id": item.custom_id, "params": draft_request_params(request, model=item.model)}


# --- results -------------------------------------------------------------------------------------------------


def result_apply(*, item: ClassificationBatchItem, result: Any, prompt: PromptParts) -> None:
    """Apply one result to a locked, not yet ingested item and save its draft (and article). The caller saves
    the item."""
    from apps.llm.batch import batch_result_record, message_text
    from apps.llm.models import TaskType

    draft = item.gap_draft
    message = result.message if result.type == "succeeded" else None
    error_type = ""
    if message is not None:
        text = message_text(message)
        draft.raw_output = text
        try:
            output = draft_parse(text, stop_reason=message.stop_reason or "")
            _article_write(draft=draft, output=output)
        except InvalidDraft as exc:
            error_type = "invalid_output"
            item.outcome = Outcome.INVALID
            _draft_invalid(draft=draft, item=item, reason=str(exc))
        else:
            item.outcome = Outcome.SUCCEEDED
            draft.model = message.model
    else:
        item.outcome = result.type if result.type in Outcome.values else Outcome.ERRORED
        error_type = batch_result_error_type(result)
        draft_requeue(draft=draft, reason=error_type, save=False)
    if result.type in ("succeeded", "errored"):
        item.llm_call = batch_result_record(
            custom_id=item.custom_id,
            model=message.model if message is not None else item.model,
            message=message,
            prompt=prompt,
            conversation_id="",
            error_type=error_type,
            task_type=TaskType.ARTICLE_DRAFT,
        )
    draft.save()


def _draft_invalid(*, draft: KnowledgeGapDraft, item: ClassificationBatchItem, reason: str) -> None:
    """An unusable answer gets one more try, with the clarifying instruction; a second one is final."""
    draft.last_error = f"invalid_output: {reason}"[:200]
    if item.clarifying or attempts_spent(draft.attempts):
        draft.status = DraftStatus.FAILED
        draft.needs_clarification = False
    else:
        draft.status = DraftStatus.PENDING
        draft.needs_clarification = True


def draft_requeue(*, draft: KnowledgeGapDraft, reason: str, save: bool = True) -> None:
    """Errored, expired, canceled or lost: back to pending for the next poll, until attempts run out."""
    draft.last_error = reason[:200]
    draft.status = DraftStatus.FAILED if attempts_spent(draft.attempts) else DraftStatus.PENDING
    if save:
        draft.save(update_fields=["status", "last_error", "updated_at"])


def article_digest(*, title: str, body: str, language: str) -> str:
    return hashlib.sha256(json.dumps([title, body, language], ensure_ascii=False).encode()).hexdigest()


def _article_write(*, draft: KnowledgeGapDraft, output: ArticleDraft) -> None:
    """Create the topic's draft article, or rewrite it while nobody has touched it since the model last did.

    Raises InvalidDraft when the article services refuse the fields (the answer then counts as invalid).
    """
    from apps.knowledge.models import Article
    from apps.knowledge.services import article_create, article_update

    external_id = selectors.gap_article_external_id(draft.topic)
    article = draft.article or _topic_article(draft.topic)
    if article is not None:
        article = Article.objects.select_for_update().filter(pk=article.pk).first()
    fields = {"title": output.title, "body": output.body, "language": output.language}
    try:
        if article is None:
            article = article_create(
                **fields, tags=[GAP_TAG], status=Article.Status.DRAFT, external_id=external_id, actor=None
            )
        elif article.status == Article.Status.PUBLISHED:
            _draft_skip(draft=draft, article=article, reason="the topic's article was published meanwhile")
            return
        elif article_digest(title=article.title, body=article.body, language=article.language) != _last_written(
            article
        ):
            _draft_skip(draft=draft, article=article, reason="a person edited the article: this draft is kept here")
            return
        else:
            tags = article.tags if GAP_TAG in article.tags else [*article.tags, GAP_TAG]
            article = article_update(article=article, **fields, tags=tags, actor=None)
    except ApplicationError as exc:
        errors = "; ".join(f"{key}: {value}" for key, value in exc.extra.get("errors", {}).items())
        raise InvalidDraft(f"article refused: {errors or exc.message}") from exc
    draft.article = article
    # Of the article as stored (the services may normalise the text), so the next night compares like with like.
    draft.written_digest = article_digest(title=article.title, body=article.body, language=article.language)
    draft.status = DraftStatus.DRAFTED
    draft.needs_clarification = False
    draft.last_error = ""
    _link_group(for_date=draft.for_date, topic=draft.topic, article_id=article.pk)


def _last_written(article: Any) -> str:
    """The digest of what the model last wrote into `article` ("" when it never did: a person made it)."""
    return (
        KnowledgeGapDraft.objects.filter(article=article)
        .exclude(written_digest="")
        .order_by("-updated_at", "-id")
        .values_list("written_digest", flat=True)
        .first()
        or ""
    )


def _draft_skip(*, draft: KnowledgeGapDraft, article: Any, reason: str) -> None:
    draft.article = article
    draft.status = DraftStatus.SKIPPED
    draft.needs_clarification = False
    draft.last_error = reason
    _link_group(for_date=draft.for_date, topic=draft.topic, article_id=article.pk)
