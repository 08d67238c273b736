"""Outcomes per prompt version in the nightly report and its CSV, on a fixed timeline."""

import csv
import io
from datetime import timedelta

import pytest

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation, Message
from apps.llm.models import LLMCall
from apps.triage.models import TranscriptClassification
from apps.triage.reports import report_csv, report_data_build
from tests.chat.factories import ConversationFactory, exchange
from tests.prompts.factories import PromptVersionFactory
from tests.triage.factories import noon

pytestmark = pytest.mark.django_db


def conversation_of(version, day, *, cx: int | None, handed_off: bool = False, cost: str = "0") -> Conversation:
    """A conversation started at noon on `day` with one answered question (long settled by now)."""
    conversation = ConversationFactory(prompt_version=version)
    exchange(conversation, "How much is Pro?", "$29 per user per month.")
    Conversation.objects.filter(pk=conversation.pk).update(created_at=noon(day), updated_at=noon(day))
    for offset, message in enumerate(conversation.messages.order_by("id")):
        Message.objects.filter(pk=message.pk).update(created_at=noon(day) + timedelta(seconds=offset))
    if handed_off:
        SupportTicket.objects.create(
            user=conversation.user, conversation_id=str(conversation.pk), subject="x", source="handoff"
        )
    LLMCall.objects.create(task_type="chat", model="m", conversation_id=str(conversation.pk), cost_usd=cost)
    TranscriptClassification.objects.create(
        conversation=conversation, for_date=day, status="classified", summary="s", cx_score=cx
    )
    return conversation


def test_outcomes_and_cx_per_version_are_in_the_report_and_csv(day):
    live = PromptVersionFactory(major=2, minor=0)
    trial = PromptVersionFactory(prompt=live.prompt, major=2, minor=1)
    conversation_of(live, day, cx=5, cost="0.004")
    conversation_of(live, day, cx=1, handed_off=True, cost="0.002")
    conversation_of(trial, day, cx=4, cost="0.003")
    conversation_of(trial, day - timedelta(days=1), cx=None, cost="0.5")  # started another day

    data = report_data_build(for_date=day)

    rows = {row["version"]: row for row in data["outcomes"]}
    assert set(rows) == {"2.0.0", "2.1.0"}
    assert (rows["2.0.0"]["resolved"], rows["2.0.0"]["handed_off"], rows["2.0.0"]["pending"]) == (1, 1, 0)
    assert (rows["2.0.0"]["resolution_rate"], rows["2.0.0"]["handoff_rate"]) == (0.5, 0.5)
    # Cost of all its conversations over the resolved ones: (0.004 + 0.002) / 1.
    assert rows["2.0.0"]["cost_per_resolution_usd"] == "0.006000"
    assert rows["2.0.0"]["cx_average"] == 3.0
    assert (rows["2.1.0"]["conversations"], rows["2.1.0"]["cost_per_resolution_usd"]) == (1, "0.003000")
    assert data["cx_score"]["scored"] == 3 and data["cx_score"]["average"] == round(10 / 3, 2)

    lines = list(csv.reader(io.StringIO(report_csv(data))))
    label = f"{live.prompt.slug}@2.0.0"
    assert ["outcome_cost_per_resolution_usd", label, "0.006000"] in lines
    assert ["outcome_handoff_rate", label, "0.5"] in lines
    assert ["outcome_cx_average", label, "3.0"] in lines


def test_a_report_stored_before_the_new_sections_still_renders_as_csv(day):
    data = report_data_build(for_date=day)
    for key in ("outcomes", "cx_score", "knowledge_gaps"):
        data.pop(key)
    assert report_csv(data).startswith("section,key,value")
