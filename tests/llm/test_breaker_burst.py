"""Issue 14, part 4: a burst of overload is ridden out by retries; a sustained outage still opens the breaker.

Concurrent questions through the real gateway and SDK against the emulator's fault injection, with the
breaker waiting for failures to persist (LLM_BREAKER_FAILING_SECONDS) as in production.
"""

import asyncio
import time

import httpx
import pytest

from apps.llm import breaker
from apps.llm.gateway import chat_stream
from apps.llm.types import Finished, Retrying
from tests.conftest import set_faults
from tests.llm.factories import ChatRequestFactory

pytestmark = pytest.mark.django_db(transaction=True)

HAIKU = "claude-haiku-4-5"  # the free plan's route: one model, no fallback


@pytest.fixture
def production_breaker(llm_upstream, settings):
    """The production threshold, failing time and retry policy (the outage test shortens the failing time)."""
    settings.LLM_BREAKER_FAILURE_THRESHOLD = 5
    settings.LLM_BREAKER_FAILING_SECONDS = 5.0
    settings.LLM_MAX_ATTEMPTS = 4
    settings.LLM_RETRY_BUDGET_SECONDS = 3.0
    settings.LLM_BREAKER_RESET_SECONDS = 30  # once open, no probe within a question's budget
    return llm_upstream


class BreakerWatch:
    """Samples the breaker while questions run: when it was first seen open, and the upstream count then."""

    def __init__(self, upstream) -> None:
        self.upstream = upstream
        self.opened_after: float | None = None
        self.started = time.monotonic()
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        while self.opened_after is None:
            if breaker.is_open(HAIKU):
                self.opened_after = time.monotonic() - self.started
                return
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        self.task.cancel()


async def ask(questions: int) -> list[list]:
    async def one(index: int) -> list:
        request = ChatRequestFactory(plan_tier="free", user_text=f"Where is my invoice? ({index})")
        return [event async for event in chat_stream(request)]

    return list(await asyncio.gather(*(one(i) for i in range(questions))))


def message_requests(upstream) -> int:
    """Requests the emulator has answered for the route's model, whatever the status (its counters, not
    its request log, which keeps only the latest 500)."""
    stats = httpx.get(f"{upstream.base_url}/_control/stats", timeout=5).json()
    return sum(stats["by_model"].get(HAIKU, {}).values())


async def test_a_burst_of_529s_to_concurrent_questions_is_ridden_out_with_the_breaker_closed(production_breaker):
    """20 questions at once, the next 40 requests answered 529 (retry-after 0.5 s, as in the bench): every
    question retries after the server's wait and is answered; the breaker never opens. With a breaker
    that opened on the count alone, the first wave opened it and the 20 questions degraded."""
    set_faults(production_breaker, {"force_errors": [{"status": 529, "count": 40}], "retry_after_seconds": 0.5})
    watch = BreakerWatch(production_breaker)
    runs = await ask(20)
    watch.stop()

    outcomes = [[e.outcome.status for e in events if isinstance(e, Finished)] for events in runs]
    assert outcomes == [["complete"]] * 20
    assert watch.opened_after is None
    assert not any(isinstance(e, Retrying) for events in runs for e in events)  # nobody was told to wait
    assert message_requests(production_breaker) == 40 + 20  # every queued error drained, one answer each


async def test_a_sustained_outage_still_opens_the_breaker_and_then_spares_the_model(production_breaker, settings):
    """Every request fails: after the failing time the breaker opens, and from then on the waiting
    questions make no attempt until a probe is due (none within their budget), then degrade once each."""
    settings.LLM_BREAKER_FAILING_SECONDS = 1.0  # within the questions' 3 s budget
    set_faults(production_breaker, {"error_rates": {"529": 1.0}, "retry_after_seconds": 0.05})
    watch = BreakerWatch(production_breaker)
    questions = asyncio.ensure_future(ask(5))
    while watch.opened_after is None and not questions.done():
        await asyncio.sleep(0.005)
    at_opening = message_requests(production_breaker)
    runs = await questions
    watch.stop()

    assert watch.opened_after is not None and watch.opened_after >= 1.0  # not before failing for 1 s
    assert breaker.is_open(HAIKU)
    outcomes = [[e.outcome.status for e in events if isinstance(e, Finished)] for events in runs]
    assert outcomes == [["degraded"]] * 5
    assert at_opening >= 5  # the questions kept retrying until the failures had persisted
    # Once open: only attempts already under way when it opened (at most one per question) reached it.
    assert message_requests(production_breaker) - at_opening <= 5
