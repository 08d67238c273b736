"""Issue 14, part 4: a question rides out an overload within its retry budget instead of failing at once."""

import pytest

from apps.llm import breaker
from apps.llm.gateway import chat_stream
from apps.llm.types import Finished, Retrying, TextDelta
from tests.conftest import received_requests, set_faults
from tests.llm.factories import ChatRequestFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def run(request, **kwargs) -> list:
    return [event async for event in chat_stream(request, **kwargs)]


def attempts(upstream) -> int:
    return sum(1 for entry in received_requests(upstream, limit=200) if entry["path"] == "/v1/messages")


@pytest.fixture
def overload(llm_upstream, settings):
    """Every model answers 529 to the next 6 requests; one failure opens a breaker for 0.3 s."""
    settings.LLM_BREAKER_FAILURE_THRESHOLD = 1
    settings.LLM_BREAKER_RESET_SECONDS = 0.3
    set_faults(llm_upstream, {"force_errors": [{"status": 529, "count": 6}]})
    return llm_upstream


async def test_without_a_budget_an_overload_degrades_at_once(overload, waits, settings):
    settings.LLM_RETRY_BUDGET_SECONDS = 0
    events = await run(ChatRequestFactory(plan_tier="free"), policy=waits.policy())
    assert events[-1].outcome.status == "degraded" and not any(isinstance(e, Retrying) for e in events)


async def test_within_its_budget_a_question_waits_for_the_probe_and_is_answered(overload, waits, settings):
    settings.LLM_RETRY_BUDGET_SECONDS = 8
    events = await run(ChatRequestFactory(plan_tier="free"), policy=waits.policy())

    outcome = events[-1].outcome
    assert isinstance(events[-1], Finished) and outcome.status == "complete" and outcome.text
    retrying = [e for e in events if isinstance(e, Retrying)]
    assert retrying and 0 < retrying[0].budget_seconds <= 8  # the customer saw "retrying", not an apology
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, Retrying) for e in events[:first_text])
    # Open breakers let one probe through per reset period, not an attempt per poll.
    assert attempts(overload) <= 7
    assert not any(breaker.is_open(model) for model in ("claude-haiku-4-5", "claude-sonnet-4-6"))


async def test_a_spent_budget_degrades(llm_upstream, waits, settings):
    settings.LLM_BREAKER_FAILURE_THRESHOLD = 1
    settings.LLM_BREAKER_RESET_SECONDS = 0.3
    settings.LLM_RETRY_BUDGET_SECONDS = 1
    set_faults(llm_upstream, {"error_rates": {"529": 1.0}})
    events = await run(ChatRequestFactory(plan_tier="free"), policy=waits.policy())
    assert events[-1].outcome.status == "degraded"
    assert any(isinstance(e, Retrying) for e in events)
    assert attempts(llm_upstream) <= 2 + 2 * (1 / 0.3 + 1)  # first tries, then one probe per period per model
