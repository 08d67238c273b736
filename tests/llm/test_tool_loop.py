"""The tool loop through the real SDK against the emulator, with the real runner: a call runs once for
the customer's account whatever breaks around it (a stream dropped mid tool_use, a round restarted on
the fallback model, an overloaded upstream), and every round is a logged call."""

import pytest
from channels.db import database_sync_to_async
from django.core import mail

from apps.actions.models import ActionRecord
from apps.actions.registry import tool_specs
from apps.actions.runner import AccountToolRunner
from apps.actions.services import CallScope
from apps.llm.gateway import chat_stream
from apps.llm.models import LLMCall, RoutingRule
from apps.llm.types import Finished, Reset, TextDelta, ToolFinished, ToolStarted
from tests.actions.factories import AccountFactory, InvoiceFactory
from tests.conftest import set_faults
from tests.llm.factories import ChatRequestFactory

pytestmark = pytest.mark.django_db(transaction=True)

SONNET, OPUS = "claude-sonnet-4-6", "claude-opus-4-6"
TOOLS = tool_specs(["list_invoices", "resend_invoice", "cancel_subscription"])


@pytest.fixture(autouse=True)
def plan_defaults():
    RoutingRule.objects.all().delete()  # enterprise → opus, falling back to sonnet


@pytest.fixture
def account():
    account = AccountFactory(user__username="loop-alice", user__email="loop-alice@example.com")
    InvoiceFactory(account=account, number="INV-LOOP-1", issued_on="2026-11-05", due_on="2026-11-19")
    return account


async def answer(account, text: str, **kwargs) -> list:
    request = ChatRequestFactory(plan_tier="enterprise", user_text=text, tools=TOOLS)
    scope = CallScope(account=account, conversation_id=request.conversation_id, reply_id=request.reply.message_id)
    return [event async for event in chat_stream(request, tool_runner=AccountToolRunner(scope), **kwargs)]


def outcome_of(events: list):
    [terminal] = [event for event in events if isinstance(event, Finished)]
    assert events[-1] is terminal
    return terminal.outcome


def visible(events: list) -> str:
    text = ""
    for event in events:
        text = "" if isinstance(event, Reset) else text + (event.text if isinstance(event, TextDelta) else "")
    return text


async def logged() -> list[tuple[str, str]]:
    return await database_sync_to_async(lambda: list(LLMCall.objects.order_by("id").values_list("model", "status")))()


async def records() -> list[ActionRecord]:
    return await database_sync_to_async(lambda: list(ActionRecord.objects.all()))()


async def test_a_call_runs_between_two_logged_rounds(llm_upstream, account, waits):
    events = await answer(account, "Please resend invoice INV-LOOP-1", policy=waits.policy())
    outcome = outcome_of(events)
    assert (outcome.status, outcome.rounds) == ("complete", 2)
    assert [type(event) for event in events if isinstance(event, ToolStarted | ToolFinished)] == [
        ToolStarted,
        ToolFinished,
    ]
    assert "INV-LOOP-1" in outcome.text == visible(events)
    assert [message.to for message in mail.outbox] == [["loop-alice@example.com"]]
    assert await logged() == [(OPUS, "ok"), (OPUS, "ok")]
    costs = await database_sync_to_async(lambda: list(LLMCall.objects.values_list("cost_usd", flat=True)))()
    assert all(cost > 0 for cost in costs)


async def test_a_stream_dropped_mid_tool_use_runs_nothing_until_a_complete_call(llm_upstream, account, waits, settings):
    settings.LLM_MAX_ATTEMPTS = 1
    set_faults(llm_upstream, {"per_model": {OPUS: {"cut_stream_after_tokens": 1, "cut_mode": "drop"}}})
    events = await answer(account, "Please resend invoice INV-LOOP-1", policy=waits.policy())
    outcome = outcome_of(events)
    assert (outcome.status, outcome.model) == ("complete", SONNET)
    assert sum(isinstance(event, ToolStarted) for event in events) == 1
    assert len(mail.outbox) == 1 and len(await records()) == 1
    assert await logged() == [(OPUS, "error"), (SONNET, "ok"), (SONNET, "ok")]


async def test_a_round_restarted_after_the_tool_ran_does_not_run_it_again(llm_upstream, account, waits, settings):
    settings.LLM_MAX_ATTEMPTS = 1
    # The first round's call is one token (`{}`); the second round's text breaks after three.
    set_faults(llm_upstream, {"per_model": {OPUS: {"cut_stream_after_tokens": 3, "cut_mode": "error"}}})
    events = await answer(account, "Please resend my last invoice", policy=waits.policy())
    outcome = outcome_of(events)
    assert (outcome.status, outcome.model, outcome.rounds) == ("complete", SONNET, 2)
    assert any(isinstance(event, Reset) for event in events)
    assert outcome.text == visible(events) and "INV-LOOP-1" in outcome.text
    assert sum(isinstance(event, ToolStarted) for event in events) == 1
    assert len(mail.outbox) == 1 and len(await records()) == 1
    assert await logged() == [(OPUS, "ok"), (OPUS, "error"), (SONNET, "ok")]


async def test_an_overloaded_upstream_is_retried_and_the_call_runs_once(llm_upstream, account, waits):
    set_faults(llm_upstream, {"force_errors": [{"status": 529, "count": 1}], "retry_after_seconds": 1})
    events = await answer(account, "Please resend invoice INV-LOOP-1", policy=waits.policy())
    outcome = outcome_of(events)
    assert (outcome.status, outcome.model, outcome.rounds) == ("complete", OPUS, 2)
    assert waits == [1.0]
    assert len(mail.outbox) == 1 and len(await records()) == 1
    assert await logged() == [(OPUS, "error"), (OPUS, "ok"), (OPUS, "ok")]


async def test_a_confirmation_tool_only_proposes(llm_upstream, account, waits):
    events = await answer(account, "Cancel my subscription", policy=waits.policy())
    outcome = outcome_of(events)
    [record] = await records()
    assert (record.tool, record.status) == ("cancel_subscription", "awaiting_confirmation")
    assert "Confirm" in outcome.text
    await database_sync_to_async(account.refresh_from_db)()
    assert account.cancel_at_period_end is False
