"""Reads for the nightly classification: which conversations a day holds, and their transcripts."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from apps.accounts.selectors import neutralise_tags
from apps.triage.conf import triage_setting
from apps.triage.models import ClassificationBatch, TranscriptClassification
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


def day_is_complete(*, for_date: date) -> bool:
    """True when every classification of the day is final and none of its batches is open."""
    open_statuses = [TranscriptClassification.Status.PENDING, TranscriptClassification.Status.SUBMITTED]
    if TranscriptClassification.objects.filter(for_date=for_date, status__in=open_statuses).exists():
        return False
    return not batches_open().filter(for_date=for_date).exists()


def daily_report_exists(*, for_date: date) -> bool:
    from apps.triage.models import DailyReport

    return DailyReport.objects.filter(date=for_date).exists()


def classification_counts(*, for_date: date) -> dict[str, int]:
    """Classifications of the day by status."""
    from django.db.models import Count

    rows = TranscriptClassification.objects.filter(for_date=for_date).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows.order_by()}


UNSPECIFIED_GAP = "unspecified"


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
    rows = []
    for group in groups:
        topic = group["gap_topic"]
        mine = gaps.filter(gap_topic=topic)
        languages = sorted(set(mine.values_list("language", flat=True)) - {""})
        rows.append(
            {
                "topic": topic or UNSPECIFIED_GAP,
                "count": group["n"],
                "languages": languages,
                "article_id": drafted.get(topic),
                "examples": [
                    {"conversation_id": str(conversation_id), "summary": summary}
                    for conversation_id, summary in mine.order_by("-conversation__updated_at", "-id").values_list(
                        "conversation_id", "summary"
                    )[:examples]
                ],
            }
        )
    return rows
