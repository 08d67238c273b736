"""Reads for the nightly classification: which conversations a day holds, and their transcripts."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from apps.accounts.selectors import neutralise_tags
from apps.triage.conf import triage_setting
from apps.triage.models import ClassificationBatch, KnowledgeGapDraft, TranscriptClassification
from apps.triage.pii import pii_mask

ROLE_LABELS = {"user": "Customer", "assistant": "Assistant"}


@dataclass(frozen=True)
class TranscriptForClassification:
    classification_id: int
    conversation_id: str
    attempt: int  # the attempt this submission will be
    clarifying: bool
    plan_tier: str
    text: str  # "<transcript>…</transcript>", masked when TRIAGE_MASK_PII


def day_bounds(for_date: date) -> tuple[datetime, datetime]:
    """[start, end) of `for_date` in the project's TIME_ZONE, as aware datetimes."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(for_date, time.min), tz)
    return start, timezone.make_aware(datetime.combine(for_date + timedelta(days=1), time.min), tz)


def default_report_date() -> date:
    """Yesterday in TIME_ZONE: what the 02:00 run classifies."""
    return timezone.localdate() - timedelta(days=1)


def conversations_finished_on(*, for_date: date) -> QuerySet:
    """Conversations whose last activity fell on `for_date`, idle long enough to count as finished, with at least
    one customer message."""
    from apps.chat.models import Conversation, Message

    start, end = day_bounds(for_date)
    idle_cutoff = timezone.now() - timedelta(minutes=int(triage_setting("CHAT_CONVERSATION_IDLE_MINUTES")))
    has_user_message = Exists(Message.objects.filter(conversation=OuterRef("pk"), role="user"))
    return (
        Conversation.objects.filter(updated_at__gte=start, updated_at__lt=min(end, idle_cutoff))
        .filter(has_user_message)
        .order_by("updated_at", "pk")
    )


def transcript_render(messages: Iterable[tuple[str, str]], *, mask_pii: bool) -> str:
    """The transcript the classifier reads: one `Customer:`/`Assistant:` line per message, tags neutralised so a
    customer cannot close our <transcript> early."""
    lines = []
    for role, text in messages:
        text = text.strip()
        if not text or role not in ROLE_LABELS:
            continue
        if mask_pii:
            text = pii_mask(text)
        lines.append(f"{ROLE_LABELS[role]}: {neutralise_tags(text)}")
    body = "\n".join(lines)
    return f"<transcript>\n{body}\n</transcript>"


def transcripts_for_classifications(
    classifications: list[TranscriptClassification], *, attempt_offset: int
) -> Iterator[TranscriptForClassification]:
    """Render the transcripts of a chunk of classifications with two queries (messages, plan tiers).

    `attempt_offset` is 1 when preparing (the next attempt) and 0 when re-rendering an already counted attempt.
    """
    from apps.chat.models import Conversation, Message

    conversation_ids = [item.conversation_id for item in classifications]
    plans = dict(Conversation.objects.filter(pk__in=conversation_ids).values_list("pk", "user__customer_account__plan"))
    by_conversation: dict = {conversation_id: [] for conversation_id in conversation_ids}
    rows = (
        Message.objects.filter(conversation_id__in=conversation_ids)
        .order_by("conversation_id", "created_at", "id")
        .values_list("conversation_id", "role", "text")
    )
    for conversation_id, role, text in rows.iterator(chunk_size=2000):
        by_conversation[conversation_id].append((role, text))
    mask = bool(triage_setting("TRIAGE_MASK_PII"))
    for item in classifications:
        yield TranscriptForClassification(
            classification_id=item.pk,
            conversation_id=str(item.conversation_id),
            attempt=item.attempts + attempt_offset,
            clarifying=item.needs_clarification,
            plan_tier=plans.get(item.conversation_id) or "free",
            text=transcript_render(by_conversation[item.conversation_id], mask_pii=mask),
        )


def batches_open() -> QuerySet[ClassificationBatch]:
    """Batches not yet fully ingested, oldest first."""
    return ClassificationBatch.objects.filter(
        status__in=[ClassificationBatch.Status.PREPARING, ClassificationBatch.Status.SUBMITTED]
    ).order_by("created_at", "id")


def classification_is_final(*, for_date: date) -> bool:
    """True when every classification of the day is final and none of its classification batches is open."""
    open_statuses = [TranscriptClassification.Status.PENDING, TranscriptClassification.Status.SUBMITTED]
    if TranscriptClassification.objects.filter(for_date=for_date, status__in=open_statuses).exists():
        return False
    return not batches_open().filter(for_date=for_date, kind=ClassificationBatch.Kind.CLASSIFICATION).exists()


def day_is_complete(*, for_date: date) -> bool:
    """True when the day's classification is final and so is the drafting of its knowledge-gap articles (when
    the day is recent enough to be drafted for): the report can be written."""
    if not classification_is_final(for_date=for_date):
        return False
    if batches_open().filter(for_date=for_date).exists():
        return False
    open_drafts = [KnowledgeGapDraft.Status.PENDING, KnowledgeGapDraft.Status.SUBMITTED]
    if KnowledgeGapDraft.objects.filter(for_date=for_date, status__in=open_drafts).exists():
        return False
    return not (gap_drafting_applies(for_date=for_date) and gap_topics_undrafted(for_date=for_date))


def daily_report_exists(*, for_date: date) -> bool:
    from apps.triage.models import DailyReport

    return DailyReport.objects.filter(date=for_date).exists()


def classification_counts(*, for_date: date) -> dict[str, int]:
    """Classifications of the day by status."""
    from django.db.models import Count

    rows = TranscriptClassification.objects.filter(for_date=for_date).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows.order_by()}


UNSPECIFIED_GAP = "unspecified"
GAP_ARTICLE_EXTERNAL_ID = "knowledge-gap:{topic}"


def gap_article_external_id(topic: str) -> str:
    """The external id of a topic's draft article: how every night (and the admin action) finds the same one."""
    return GAP_ARTICLE_EXTERNAL_ID.format(topic=topic)


def gap_drafting_applies(*, for_date: date) -> bool:
    """Whether the nightly batch drafts articles for `for_date`'s gaps: on (TRIAGE_GAP_DRAFTS) and a recent day
    (TRIAGE_GAP_DRAFT_DAYS), so switching it on does not draft for the whole history."""
    if not triage_setting("TRIAGE_GAP_DRAFTS"):
        return False
    return for_date >= timezone.localdate() - timedelta(days=int(triage_setting("TRIAGE_GAP_DRAFT_DAYS")))


def gap_topics_undrafted(*, for_date: date) -> list[tuple[str, int]]:
    """(topic, conversations) of the day's named gap groups that have no draft row yet, largest first."""
    from django.db.models import Count

    done = KnowledgeGapDraft.objects.filter(for_date=for_date).values_list("topic", flat=True)
    groups = (
        TranscriptClassification.objects.filter(
            for_date=for_date, status=TranscriptClassification.Status.CLASSIFIED, knowledge_gap=True
        )
        .exclude(gap_topic="")
        .exclude(gap_topic__in=done)
        .values("gap_topic")
        .annotate(n=Count("id"))
        .order_by("-n", "gap_topic")
    )
    return [(group["gap_topic"], group["n"]) for group in groups]


def gap_draft_dates_due() -> list[date]:
    """Recent days whose classification is final and that still have gap topics without a draft row: a restart
    between the last classification result and the drafting batch only delays it to the next poll."""
    if not triage_setting("TRIAGE_GAP_DRAFTS"):
        return []
    since = timezone.localdate() - timedelta(days=int(triage_setting("TRIAGE_GAP_DRAFT_DAYS")))
    candidates = (
        TranscriptClassification.objects.filter(
            for_date__gte=since, status=TranscriptClassification.Status.CLASSIFIED, knowledge_gap=True
        )
        .exclude(gap_topic="")
        .values_list("for_date", flat=True)
        .distinct()
    )
    return [
        day
        for day in sorted(set(candidates))
        if classification_is_final(for_date=day) and gap_topics_undrafted(for_date=day)
    ]


GAP_DRAFT_QUESTION_CHARS = 600  # per customer message
GAP_DRAFT_MESSAGES = 3  # customer messages per conversation
GAP_DRAFT_ARTICLE_CHARS = 1500  # excerpt of each related article
GAP_DRAFT_ARTICLES = 3


def gap_draft_requests(drafts: list[KnowledgeGapDraft], *, attempt_offset: int) -> Iterator:
    """The material of each draft request: the group's customer messages (masked like the transcripts, up to
    TRIAGE_GAP_DRAFT_MAX_CONVERSATIONS conversations) and the published articles closest to the topic.

    `attempt_offset` is 1 when preparing (the next attempt) and 0 when re-rendering an already counted attempt.
    """
    from apps.chat.models import Message
    from apps.knowledge.search import search
    from apps.triage.drafting import AskedQuestion, GapDraftRequest, RelatedArticle

    mask = bool(triage_setting("TRIAGE_MASK_PII"))
    limit = int(triage_setting("TRIAGE_GAP_DRAFT_MAX_CONVERSATIONS"))
    for draft in drafts:
        group = list(
            TranscriptClassification.objects.filter(
                for_date=draft.for_date,
                status=TranscriptClassification.Status.CLASSIFIED,
                knowledge_gap=True,
                gap_topic=draft.topic,
            )
            .order_by("id")
            .values_list("conversation_id", "language")[:limit]
        )
        texts: dict = {conversation_id: [] for conversation_id, _ in group}
        rows = (
            Message.objects.filter(conversation_id__in=list(texts), role="user")
            .order_by("conversation_id", "created_at", "id")
            .values_list("conversation_id", "text")
        )
        for conversation_id, text in rows:
            if len(texts[conversation_id]) < GAP_DRAFT_MESSAGES and text.strip():
                text = text.strip()[:GAP_DRAFT_QUESTION_CHARS]
                texts[conversation_id].append(neutralise_tags(pii_mask(text) if mask else text))
        questions = tuple(
            AskedQuestion(str(conversation_id), language, "\n".join(texts[conversation_id]))
            for conversation_id, language in group
            if texts[conversation_id]
        )
        languages = [language for _, language in group if language]
        language = max(sorted(set(languages)), key=languages.count) if languages else "en"
        query = " ".join([draft.topic, *(question.text for question in questions[:5])])
        articles = tuple(
            RelatedArticle(
                neutralise_tags(hit.title), hit.url, hit.language, neutralise_tags(hit.body[:GAP_DRAFT_ARTICLE_CHARS])
            )
            for hit in search(query, language=language, limit=GAP_DRAFT_ARTICLES)
            if hit.article_id != draft.article_id  # never "avoid duplicating" the draft itself
        )
        yield GapDraftRequest(
            draft_id=draft.pk,
            attempt=draft.attempts + attempt_offset,
            clarifying=draft.needs_clarification,
            topic=draft.topic,
            for_date=draft.for_date.isoformat(),
            questions=questions,
            articles=articles,
        )


def knowledge_gap_groups(*, for_date: date, examples: int = 3) -> list[dict]:
    """The day's unanswered questions grouped by topic, largest first: count, languages, a few examples, and
    the draft article already made for the topic (any day), if one was."""
    from django.db.models import Count

    gaps = TranscriptClassification.objects.filter(
        for_date=for_date, status=TranscriptClassification.Status.CLASSIFIED, knowledge_gap=True
    )
    groups = gaps.values("gap_topic").annotate(n=Count("id")).order_by("-n", "gap_topic")
    topics = [group["gap_topic"] for group in groups]
    drafted = dict(
        TranscriptClassification.objects.filter(gap_article__isnull=False, gap_topic__in=topics)
        .order_by("gap_topic", "gap_article_id")  # the newest draft wins
        .values_list("gap_topic", "gap_article_id")
    )
    from apps.knowledge.models import Article

    articles = Article.objects.in_bulk(set(drafted.values()))
    tonight = dict(KnowledgeGapDraft.objects.filter(for_date=for_date, topic__in=topics).values_list("topic", "status"))
    rows = []
    for group in groups:
        topic = group["gap_topic"]
        mine = gaps.filter(gap_topic=topic)
        article = articles.get(drafted.get(topic))
        languages = sorted(set(mine.values_list("language", flat=True)) - {""})
        rows.append(
            {
                "topic": topic or UNSPECIFIED_GAP,
                "count": group["n"],
                "languages": languages,
                "article_id": drafted.get(topic),
                # What a reviewer needs: the article's title and status ("draft" = awaiting review), and
                # what the nightly drafting did for this group ("" when it did not run for it).
                "article_title": article.title if article else "",
                "article_status": article.status if article else "",
                "draft_status": tonight.get(topic, ""),
                "examples": [
                    {"conversation_id": str(conversation_id), "summary": summary}
                    for conversation_id, summary in mine.order_by("-conversation__updated_at", "-id").values_list(
                        "conversation_id", "summary"
                    )[:examples]
                ],
            }
        )
    return rows
