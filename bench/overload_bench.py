"""Overload benchmark: a burst of 529s with many questions at once, and a long total outage.

    python bench/overload_bench.py [--questions 20] [--burst 40] [--outage-seconds 120]

Runs the real gateway (apps.llm.gateway.chat_stream over the SDK) against the offline emulator in a
thread, with the production retry policy, breaker and retry budget (settings of supportbot.settings.base
for LLM_*, not the test suite's shortened ones). Prints per scenario: answered / degraded, upstream
attempts, attempts made while a breaker was open, and wall time.

- burst: the emulator answers the next `--burst` requests with 529 (retry-after 0.5 s) while
  `--questions` questions arrive at once. Goal: ≥ 18/20 answered.
- outage: every request fails with 529 for `--outage-seconds`; a question arrives every second.
  Goals: ≤ 1 attempt per 10 questions once the breaker is open, every question exactly one outcome,
  degraded answers = what would be tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(db_path: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "supportbot.settings.test"
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def production_llm_settings(settings) -> None:
    from supportbot.settings import anthropic as defaults

    for name in dir(defaults):
        if name.startswith("LLM_") and (
            "BREAKER" in name or "BACKOFF" in name or "BUDGET" in name or "ATTEMPT" in name
        ):
            setattr(settings, name, getattr(defaults, name))
    settings.LLM_TOTAL_TIMEOUT_SECONDS = defaults.LLM_TOTAL_TIMEOUT_SECONDS


async def ask(index: int) -> tuple[str, int]:
    from apps.llm.gateway import chat_stream
    from apps.llm.types import Finished, Retrying
    from tests.llm.factories import ChatRequestFactory

    outcome, retrying = None, 0
    async for event in chat_stream(
        ChatRequestFactory(plan_tier="free", user_text=f"How do I reset my password? ({index})")
    ):
        if isinstance(event, Retrying):
            retrying += 1
        if isinstance(event, Finished):
            assert outcome is None, "two outcomes"
            outcome = event.outcome.status
    assert outcome is not None, "no outcome"
    return outcome, retrying


async def burst(upstream, questions: int, errors: int) -> dict:
    from django.core.cache import cache

    from tests.conftest import set_faults

    cache.clear()
    set_faults(upstream, {"force_errors": [{"status": 529, "count": errors}], "retry_after_seconds": 0.5})
    started = time.monotonic()
    results = await asyncio.gather(*(ask(i) for i in range(questions)))
    return {
        "answered": sum(1 for status, _ in results if status == "complete"),
        "degraded": sum(1 for status, _ in results if status == "degraded"),
        "saw_retrying": sum(1 for _, r in results if r),
        "seconds": round(time.monotonic() - started, 1),
    }


async def outage(upstream, seconds: float) -> dict:
    from django.core.cache import cache

    from apps.llm import breaker
    from tests.conftest import set_faults

    cache.clear()
    set_faults(upstream, {"error_rates": {"529": 1.0}})
    counted = {"calls": 0, "calls_while_open": 0}
    original = breaker.allow_async

    async def counting_allow(model: str) -> bool:
        was_open = breaker.is_open(model)
        allowed = await original(model)
        if allowed:
            counted["calls"] += 1
            counted["calls_while_open"] += was_open
        return allowed

    breaker.allow_async = counting_allow
    started = time.monotonic()
    tasks = []
    try:
        while time.monotonic() - started < seconds:
            tasks.append(asyncio.ensure_future(ask(len(tasks))))
            await asyncio.sleep(1.0)
        results = await asyncio.gather(*tasks)
    finally:
        breaker.allow_async = original
    questions = len(results)
    return {
        "questions": questions,
        "one_outcome_each": len(results) == questions,
        "degraded": sum(1 for status, _ in results if status == "degraded"),
        "attempts": counted["calls"],
        "attempts_while_open": counted["calls_while_open"],
        "per_10_questions_while_open": round(10 * counted["calls_while_open"] / max(questions, 1), 2),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--outage-seconds", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(str(Path(tmp) / "bench.sqlite3"))
        from django.conf import settings

        from apps.llm.clients import reset_clients
        from apps.upstream.testing import start_upstream_in_thread

        upstream = start_upstream_in_thread()
        settings.USE_OFFLINE_UPSTREAM = True
        settings.OFFLINE_UPSTREAM_URL = upstream.base_url
        production_llm_settings(settings)
        reset_clients()
        print(
            f"settings: budget {settings.LLM_RETRY_BUDGET_SECONDS} s, breaker threshold "
            f"{settings.LLM_BREAKER_FAILURE_THRESHOLD}, probe interval {settings.LLM_BREAKER_RESET_SECONDS} s"
        )
        print("burst  ", asyncio.run(burst(upstream, args.questions, args.burst)))
        if args.outage_seconds > 0:
            print("outage ", asyncio.run(outage(upstream, args.outage_seconds)))


if __name__ == "__main__":
    main()
