"""Prompt-caching benchmark: what the cache saves on realistic support traffic.

    python bench/cache_bench.py [--conversations 20] [--turns 5]

Runs the real gateway (apps.llm.gateway.chat_stream, the real SDK over HTTP) against the offline
emulator in a thread, on a throwaway SQLite database, with the demo support prompt (persona, rules,
output format, knowledge base, few-shot examples). All conversations run well within the 5-minute
cache TTL. Prints, from the LLMCall log:

- input cost with caching vs the same token counts priced as uncached (target: ≤ 15 %);
- the share of the stable prefix (the system prompt) read from cache after the first request
  (target: ≥ 95 %).

Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = (
    "How do I download the PDF of my last invoice?",
    "Can I switch from monthly to annual billing mid-cycle?",
    "My sync keeps showing conflict copies, what should I do?",
    "How do I add a second admin to our workspace?",
    "What happens to my data if I cancel?",
    "Is there an API rate limit on the Pro plan?",
    "I was charged twice this month, can you check?",
    "How do I enable two-factor authentication?",
)
COST_TARGET = Decimal("0.15")
SHARE_TARGET = 0.95


def setup_django(db_path: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "supportbot.settings.test"
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def demo_prompt():
    from apps.llm.types import PromptParts

    try:
        from apps.accounts import demo_content

        return PromptParts(
            slug="support-assistant",
            version="bench",
            version_id=None,
            persona=demo_content.load_text("persona.txt"),
            business_rules=demo_content.load_text("business_rules.txt"),
            output_format=demo_content.load_text("output_format.txt"),
            reference_documents=tuple(demo_content.knowledge_base_documents()),
            few_shot_examples=demo_content.load_text("few_shot.txt"),
            max_tokens=600,
        )
    except ImportError:  # demo content not available: synthesise a prompt of the same size (≥ 5,000 tokens)
        paragraph = "Acme invoices are issued monthly and payable within fourteen days; refunds are prorated. "
        return PromptParts(
            slug="support-assistant",
            version="bench",
            version_id=None,
            persona="You are Acme Corp's customer-support assistant.",
            business_rules="Only discuss Acme products.",
            output_format="Answer in short paragraphs.",
            reference_documents=tuple((f"Document {n}", paragraph * 40) for n in range(8)),
            few_shot_examples="",
            max_tokens=600,
        )


async def run_traffic(prompt, conversations: int, turns: int) -> None:
    from apps.llm.gateway import chat_stream
    from apps.llm.types import ChatRequest, Finished, Turn

    for conversation in range(conversations):
        history: list[Turn] = []
        for turn in range(turns):
            question = QUESTIONS[(conversation + turn) % len(QUESTIONS)]
            request = ChatRequest(
                prompt=prompt,
                history=tuple(history),
                summary="",
                user_text=question,
                account_context=f"<account_context>\ncustomer: user{conversation}\nplan: pro\n</account_context>",
                plan_tier="pro",
                language="en",
                conversation_id=f"bench-{conversation}",
            )
            answer = ""
            async for event in chat_stream(request):
                if isinstance(event, Finished):
                    answer = event.outcome.text
                    if event.outcome.status != "complete":
                        raise SystemExit(f"answer failed: {event.outcome}")
            history += [Turn("user", question), Turn("assistant", answer)]


def report(prompt) -> bool:
    from apps.llm.gateway import count_request_tokens
    from apps.llm.models import LLMCall
    from apps.llm.pricing import CACHE_READ_MULTIPLIER, CACHE_WRITE_MULTIPLIER, prices_for
    from apps.llm.prompting import chat_params
    from apps.llm.types import ChatRequest

    calls = list(LLMCall.objects.filter(task_type="chat", status="ok").order_by("id"))
    model = calls[0].model
    input_price = prices_for(model)[0] / Decimal(1_000_000)

    cached_cost = uncached_cost = Decimal(0)
    for call in calls:
        cached_cost += input_price * (
            call.input_tokens
            + call.cache_creation_input_tokens * CACHE_WRITE_MULTIPLIER["5m"]
            + call.cache_read_input_tokens * CACHE_READ_MULTIPLIER
        )
        uncached_cost += input_price * (
            call.input_tokens + call.cache_creation_input_tokens + call.cache_read_input_tokens
        )

    probe = ChatRequest(prompt, (), "", "hi", "", "pro", "en", None, None)
    params = chat_params(probe, model)
    total, _ = count_request_tokens(params)
    rest, _ = count_request_tokens({**params, "system": []})
    prefix = total - rest
    later = calls[1:]
    prefix_read = sum(min(call.cache_read_input_tokens, prefix) for call in later)
    share = prefix_read / (prefix * len(later)) if later else 0.0
    all_input = sum(c.input_tokens + c.cache_creation_input_tokens + c.cache_read_input_tokens for c in calls)
    all_read = sum(c.cache_read_input_tokens for c in calls)
    ratio = cached_cost / uncached_cost

    print(f"model                         {model}")
    print(f"requests                      {len(calls)}")
    print(f"stable prefix (system)        {prefix:,} tokens")
    print(f"input tokens, all requests    {all_input:,} ({all_read / all_input:.1%} read from cache)")
    print(f"input cost without caching    ${uncached_cost:.4f}")
    print(f"input cost with caching       ${cached_cost:.4f}")
    print(f"with / without                {ratio:.1%}   (target ≤ {COST_TARGET:.0%})")
    print(f"prefix read from cache        {share:.1%}   after the first request (target ≥ {SHARE_TARGET:.0%})")
    return ratio <= COST_TARGET and share >= SHARE_TARGET


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        setup_django(str(Path(tmp) / "bench.sqlite3"))
        from django.conf import settings

        from apps.llm.clients import reset_clients
        from apps.upstream.testing import start_upstream_in_thread

        upstream = start_upstream_in_thread()
        try:
            settings.USE_OFFLINE_UPSTREAM = True
            settings.OFFLINE_UPSTREAM_URL = upstream.base_url
            reset_clients()
            prompt = demo_prompt()
            asyncio.run(run_traffic(prompt, args.conversations, args.turns))
            ok = report(prompt)
        finally:
            reset_clients()
            upstream.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
