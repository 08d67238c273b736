"""Overload benchmark: a burst of 529s after which the upstream is fine, and a 2-minute total outage.

    python bench/overload_bench.py [--questions 20] [--burst 40] [--outage-seconds 120] [--tail-seconds 40]

Runs the real gateway (apps.llm.gateway.chat_stream over the SDK) against the offline emulator in a
thread, with the production retry policy and breaker (supportbot.settings.anthropic, not the test
suite's shortened ones). Each scenario runs twice in the same process, on the same machine:

- baseline: no retry budget, a fixed probe interval and a breaker that opens on the failure count
  alone (LLM_RETRY_BUDGET_SECONDS=0, LLM_BREAKER_PROBE_SECONDS=0, LLM_BREAKER_FAILING_SECONDS=0): a
  question that finds the breaker open degrades at once;
- current: the settings' defaults (retry budget, adaptive probe interval, a breaker that opens only
  on failures that persist).

`--modes` runs others too: `count-only` is current with LLM_BREAKER_FAILING_SECONDS=0 (the breaker
opening on the count alone, as before it waited for failures to persist).

Printed per run: answered / told to wait (saw `retrying`) / degraded (= tickets) / lost (no terminal
outcome, or two: must be 0), upstream attempts and those made while the breaker was open, and the time
to recovery (from the fault's end to the first answered question).

- burst: the emulator answers the next `--burst` requests with 529 (retry-after 0.5 s) while
  `--questions` questions arrive at once. Goal: ≥ 18/20 answered.
- outage: every request fails with 529 for `--outage-seconds`, then the upstream is healthy for
  `--tail-seconds`; a question arrives every second throughout. Goals: ≤ 1 attempt per 10 questions
  once the breaker is open, every question exactly one outcome, degraded answers = tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
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


@dataclass
class Answer:
    asked: float  # monotonic time the question was asked
    outcomes: list[str] = field(default_factory=list)
    retrying: int = 0
    finished: float = 0.0


async def ask(index: int) -> Answer:
    from apps.llm.gateway import chat_stream
    from apps.llm.types import Finished, Retrying
    from tests.llm.factories import ChatRequestFactory

    answer = Answer(asked=time.monotonic())
    try:
        async for event in chat_stream(
            ChatRequestFactory(plan_tier="free", user_text=f"How do I reset my password? ({index})")
        ):
            if isinstance(event, Retrying):
                answer.retrying += 1
            if isinstance(event, Finished):
                answer.outcomes.append(event.outcome.status)
                answer.finished = time.monotonic()
    except Exception as exc:  # a question that raised has no outcome: counted as lost
        print(f"question {index} raised {exc!r}")
    return answer


class AttemptCounter:
    """Counts the attempts the breaker lets through, and those let through while it was open."""

    def __init__(self) -> None:
        self.attempts = 0
        self.while_open = 0
        self.first_open: float | None = None  # monotonic time an attempt first found the breaker open

    def __enter__(self) -> AttemptCounter:
        from apps.llm import breaker

        self.original = breaker.allow_async

        async def counting_allow(model: str) -> bool:
            was_open = breaker.is_open(model)
            if was_open and self.first_open is None:
                self.first_open = time.monotonic()
            allowed = await self.original(model)
            if allowed:
                self.attempts += 1
                self.while_open += was_open
            return allowed

        breaker.allow_async = counting_allow
        return self

    def __exit__(self, *exc_info: object) -> None:
        from apps.llm import breaker

        breaker.allow_async = self.original


def summary(answers: list[Answer], counter: AttemptCounter, *, fault_ended: float | None, started: float) -> dict:
    one = [a for a in answers if len(a.outcomes) == 1]
    answered_after = [a.finished for a in one if a.outcomes[0] == "complete" and fault_ended is not None]
    recovered = [t for t in answered_after if t >= fault_ended] if fault_ended is not None else []
    return {
        "questions": len(answers),
        "answered": sum(1 for a in one if a.outcomes[0] == "complete"),
        "told_to_wait": sum(1 for a in answers if a.retrying),
        "degraded": sum(1 for a in one if a.outcomes[0] == "degraded"),
        "lost": len(answers) - len(one),
        "attempts": counter.attempts,
        "attempts_while_open": counter.while_open,
        "per_10_questions_while_open": round(10 * counter.while_open / max(len(answers), 1), 2),
        "opened_after_s": round(counter.first_open - started, 1) if counter.first_open is not None else None,
        "recovery_s": round(min(recovered) - fault_ended, 1) if recovered else None,
        "seconds": round(time.monotonic() - started, 1),
    }


MODES = ("baseline", "count-only", "current")


def apply(settings, mode: str) -> None:
    from supportbot.settings import anthropic as defaults

    baseline = mode == "baseline"
    settings.LLM_RETRY_BUDGET_SECONDS = 0.0 if baseline else defaults.LLM_RETRY_BUDGET_SECONDS
    settings.LLM_BREAKER_PROBE_SECONDS = 0.0 if baseline else defaults.LLM_BREAKER_PROBE_SECONDS
    settings.LLM_BREAKER_FAILING_SECONDS = 0.0 if mode != "current" else defaults.LLM_BREAKER_FAILING_SECONDS


async def burst(upstream, questions: int, errors: int) -> dict:
    """The forced errors end when the emulator has answered `errors` requests: recovery is measured from
    the moment the emulator's queue is empty, seen by polling its fault configuration."""
    from django.core.cache import cache

    from tests.conftest import set_faults

    cache.clear()
    set_faults(upstream, {"force_errors": [{"status": 529, "count": errors}], "retry_after_seconds": 0.5})
    started = time.monotonic()
    drained: list[float] = []

    async def watch_queue() -> None:
        import httpx

        async with httpx.AsyncClient() as client:
            while True:
                config = (await client.get(f"{upstream.base_url}/_control/faults", timeout=5)).json()
                if not config.get("force_errors"):
                    drained.append(time.monotonic())
                    return
                await asyncio.sleep(0.1)

    watcher = asyncio.ensure_future(watch_queue())
    with AttemptCounter() as counter:
        answers = await asyncio.gather(*(ask(i) for i in range(questions)))
    watcher.cancel()
    return summary(answers, counter, fault_ended=drained[0] if drained else None, started=started)


async def outage(upstream, seconds: float, tail: float) -> dict:
    from django.core.cache import cache

    from tests.conftest import set_faults

    cache.clear()
    set_faults(upstream, {"error_rates": {"529": 1.0}})
    started = time.monotonic()
    fault_ended = None
    tasks = []
    with AttemptCounter() as counter:
        while time.monotonic() - started < seconds + tail:
            if fault_ended is None and time.monotonic() - started >= seconds:
                set_faults(upstream, {})
                fault_ended = time.monotonic()
            tasks.append(asyncio.ensure_future(ask(len(tasks))))
            await asyncio.sleep(1.0)
        answers = list(await asyncio.gather(*tasks))
    return summary(answers, counter, fault_ended=fault_ended, started=started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--outage-seconds", type=float, default=120.0)
    parser.add_argument("--tail-seconds", type=float, default=40.0)
    parser.add_argument(
        "--modes", default="baseline,current", help=f"comma-separated configurations to run, of {', '.join(MODES)}"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(str(Path(tmp) / "bench.sqlite3"))
        import logging

        from django.conf import settings

        from apps.llm.clients import reset_clients
        from apps.upstream.testing import start_upstream_in_thread

        logging.getLogger("apps.llm").setLevel(logging.ERROR)  # one line per failed attempt would drown the figures
        upstream = start_upstream_in_thread()
        settings.USE_OFFLINE_UPSTREAM = True
        settings.OFFLINE_UPSTREAM_URL = upstream.base_url
        production_llm_settings(settings)
        reset_clients()
        modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
        if unknown := set(modes) - set(MODES):
            parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
        for mode in modes:
            apply(settings, mode)
            print(
                f"{mode}: budget {settings.LLM_RETRY_BUDGET_SECONDS} s, breaker threshold "
                f"{settings.LLM_BREAKER_FAILURE_THRESHOLD} failures over "
                f"{settings.LLM_BREAKER_FAILING_SECONDS} s, probe interval {settings.LLM_BREAKER_PROBE_SECONDS or '-'}"
                f" → {settings.LLM_BREAKER_RESET_SECONDS} s",
                flush=True,
            )
            print(f"  burst   {asyncio.run(burst(upstream, args.questions, args.burst))}", flush=True)
            if args.outage_seconds > 0:
                print(f"  outage  {asyncio.run(outage(upstream, args.outage_seconds, args.tail_seconds))}", flush=True)


if __name__ == "__main__":
    main()
