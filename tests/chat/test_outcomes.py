"""Outcome definitions on fixed timelines: resolved, handed off, reopened, pending; per version with cost."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from apps.chat.outcomes import Timeline, conversation_outcome, version_outcomes

T0 = datetime(2026, 11, 2, 9, 0)
H = timedelta(hours=1)


def outcome(turns, now, **flags):
    return conversation_outcome(Timeline(turns=tuple(turns), **flags), now=now)


def test_quiet_for_24_hours_after_the_answer_is_resolved():
    turns = [("user", T0), ("assistant", T0 + H / 60)]
    assert outcome(turns, T0 + 25 * H).resolved
    still_open = outcome(turns, T0 + 23 * H)
    assert still_open.pending and not still_open.resolved


def test_a_thumbs_up_resolves_at_once():
    assert outcome([("user", T0), ("assistant", T0)], T0 + H, thumbs_up=True).resolved


def test_writing_again_after_24_hours_is_a_reopen_and_not_resolved():
    turns = [("user", T0), ("assistant", T0), ("user", T0 + 30 * H), ("assistant", T0 + 30 * H)]
    result = outcome(turns, T0 + 100 * H, thumbs_up=True)
    assert result.reopened and not result.resolved and not result.pending


def test_follow_ups_within_24_hours_are_the_same_conversation():
    turns = [("user", T0), ("assistant", T0), ("user", T0 + 2 * H), ("assistant", T0 + 2 * H)]
    result = outcome(turns, T0 + 27 * H)
    assert result.resolved and not result.reopened


def test_a_handoff_is_never_resolved():
    result = outcome([("user", T0), ("assistant", T0)], T0 + 48 * H, thumbs_up=True, handed_off=True)
    assert result.handed_off and not result.resolved and not result.pending


def test_an_unanswered_last_question_is_not_resolved():
    assert not outcome([("user", T0)], T0 + 48 * H).resolved


@pytest.mark.django_db
def test_version_outcomes_count_rates_and_cost_per_resolved_conversation():
    from django.utils import timezone

    from apps.accounts.models import SupportTicket
    from apps.llm.models import LLMCall
    from tests.chat.factories import ConversationFactory, exchange
    from tests.prompts.factories import PromptVersionFactory

    version = PromptVersionFactory()
    resolved = ConversationFactory(prompt_version=version)
    exchange(resolved, "How much is Pro?", "$29 per user.")
    handed = ConversationFactory(prompt_version=version)
    exchange(handed, "Human please", "A human agent will reply.")
    SupportTicket.objects.create(user=handed.user, conversation_id=str(handed.id), subject="x", source="handoff")
    for conversation, cost in ((resolved, "0.004"), (handed, "0.002")):
        LLMCall.objects.create(task_type="chat", model="m", conversation_id=str(conversation.id), cost_usd=cost)
    now = timezone.now()
    figures = version_outcomes(since=now - 2 * H, until=now + H, now=now + 25 * H)[version.pk]
    assert (figures.conversations, figures.resolved, figures.handed_off, figures.reopened) == (2, 1, 1, 0)
    assert figures.rate(figures.resolved) == 0.5
    assert figures.cost_per_resolved == Decimal("0.006")


@pytest.mark.django_db
def test_the_metrics_csv_carries_the_outcomes_per_version():
    from django.utils import timezone

    from apps.insights.selectors import CSV_COLUMNS, csv_row, version_metrics
    from tests.chat.factories import ConversationFactory, FeedbackFactory, exchange
    from tests.prompts.factories import PromptVersionFactory

    version = PromptVersionFactory(status="active", weight=100)
    conversation = ConversationFactory(prompt_version=version)
    _, answer = exchange(conversation, "How much is Pro?", "$29 per user.")
    FeedbackFactory(message=answer)
    now = timezone.now()
    [metrics] = version_metrics(slug=version.prompt.slug, since=now - H, until=now + H)
    row = dict(zip(CSV_COLUMNS, csv_row(metrics), strict=True))
    assert (row["resolution_rate"], row["handoff_rate"], row["reopen_rate"]) == ("1.000000", "0.000000", "0.000000")
    assert row["decided_conversations"] == "1"


@pytest.mark.django_db
def test_the_metrics_page_and_csv_carry_the_cx_score_per_version(admin_client):
    from django.utils import timezone

    from apps.insights.selectors import CSV_COLUMNS, csv_row, version_metrics
    from apps.triage.models import TranscriptClassification
    from tests.chat.factories import ConversationFactory, exchange
    from tests.prompts.factories import PromptVersionFactory

    version = PromptVersionFactory(status="active", weight=100)
    for score in (5, 2, None):
        conversation = ConversationFactory(prompt_version=version)
        exchange(conversation, "How much is Pro?", "$29 per user.")
        TranscriptClassification.objects.create(
            conversation=conversation, for_date=timezone.localdate(), status="classified", cx_score=score
        )
    now = timezone.now()
    [metrics] = version_metrics(slug=version.prompt.slug, since=now - H, until=now + H)
    assert (metrics.cx_score, metrics.cx_scored) == (3.5, 2)
    row = dict(zip(CSV_COLUMNS, csv_row(metrics), strict=True))
    assert (row["cx_score"], row["cx_scored"]) == ("3.500000", "2")
    page = admin_client.get(f"/admin/insights/metrics/?prompt={version.prompt.slug}").content.decode()
    assert "CX (1–5)" in page and "3.5 <small>(2)</small>" in page
