"""Benchmark the nightly classification: 10,000 synthetic transcripts end to end against the offline emulator.

    .venv/bin/python bench/batch_bench.py [--conversations 10000] [--tracemalloc]

The emulator runs in a subprocess (batch processing delay 0) so its memory is not ours; its processing time is
measured separately and excluded from the total. Django runs on a throwaway SQLite database. Prints time and
peak RSS for preparing, submitting and ingesting. Targets: <= 20 s total, <= 150 MB peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EMULATOR_SCRIPT = """
import sys, time
from apps.upstream.config import EmulatorConfig
from apps.upstream.testing import start_upstream_in_thread
upstream = start_upstream_in_thread(EmulatorConfig(batch_processing_seconds=0))
print(upstream.base_url, flush=True)
sys.stdin.read()  # run until the parent closes our stdin
upstream.stop()
"""

DAY = date(2026, 3, 10)
TURNS = [
    [
        ("user", "Hi, I was charged twice for my Pro plan this month, card ending 4242. Email me at {n}@example.com."),
        (
            "assistant",
            "Sorry about that. I can see two charges; the duplicate will be refunded within 5 business days.",
        ),
        ("user", "Great, thanks for sorting that out so quickly!"),
    ],
    [
        ("user", "The desktop app crashes with error E-1042 whenever I sync a shared folder (case {n})."),
        ("assistant", "Please update to the latest version and clear the sync cache from Settings > Advanced."),
        ("user", "Still broken after the update. I want to speak to a human."),
        ("assistant", "I have opened a ticket; an engineer will contact you within one business day."),
    ],
    [
        ("user", "How do I reset my password? I no longer have access to +44 20 7946 0{n:03d}."),
        ("assistant", "Use 'Forgot password' on the sign-in page; the link goes to your account email."),
    ],
]


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def phase(name: str, results: list, trace: bool):
    if trace:
        tracemalloc.reset_peak()
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    results.append((name, elapsed, rss_mb(), traced))


def start_emulator() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", EMULATOR_SCRIPT], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http"):
        process.kill()
        raise SystemExit("the emulator did not start")
    return process, base_url


def configure_django(database: Path, base_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "supportbot.settings.test"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.pop("REDIS_URL", None)
    import django
    from django.conf import settings

    django.setup()
    settings.USE_OFFLINE_UPSTREAM = True
    settings.OFFLINE_UPSTREAM_URL = base_url
    settings.LLM_TOTAL_TIMEOUT_SECONDS = 300.0
    settings.REPORTS_DIR = database.parent / "reports"
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(conversations: int) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.accounts.models import CustomerAccount
    from apps.chat.models import Conversation, Message
    from apps.prompts.services import prompt_seed_defaults

    prompt_seed_defaults()
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-{n}") for n in range(100)], batch_size=500
    )
    CustomerAccount.objects.bulk_create(
        [CustomerAccount(user=user, plan=("free", "pro", "enterprise")[n % 3]) for n, user in enumerate(users)]
    )
    at = timezone.make_aware(datetime.combine(DAY, dtime(12, 0)))
    for start in range(0, conversations, 1000):
        chunk = [
            Conversation(user=users[n % len(users)], title="bench")
            for n in range(start, min(start + 1000, conversations))
        ]
        Conversation.objects.bulk_create(chunk)
        messages = [
            Message(conversation=conversation, role=role, text=text.format(n=start + i))
            for i, conversation in enumerate(chunk)
            for role, text in TURNS[(start + i) % len(TURNS)]
        ]
        Message.objects.bulk_create(messages, batch_size=2000)
        Conversation.objects.filter(pk__in=[c.pk for c in chunk]).update(updated_at=at + timedelta(seconds=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--tracemalloc", action="store_true", help="Also report Python-heap peaks (slower).")
    args = parser.parse_args()

    emulator, base_url = start_emulator()
    workdir = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        configure_django(workdir / "bench.sqlite3", base_url)
        from apps.llm.clients import get_client
        from apps.triage import services
        from apps.triage.models import ClassificationBatch, TranscriptClassification

        seed(args.conversations)
        baseline = rss_mb()
        if args.tracemalloc:
            tracemalloc.start()
        results: list = []
        with phase("prepare", results, args.tracemalloc):
            services.classifications_enqueue(for_date=DAY)
            batches = services.batches_prepare(for_date=DAY)
        with phase("submit", results, args.tracemalloc):
            for batch in batches:
                services.batch_submit(batch_id=batch.pk)
        # The emulator processes lazily on retrieve: wait for every batch to end (not our time).
        emulator_start = time.perf_counter()
        client = get_client()
        for batch in ClassificationBatch.objects.all():
            while client.messages.batches.retrieve(batch.anthropic_batch_id).processing_status != "ended":
                time.sleep(0.05)
        emulator_seconds = time.perf_counter() - emulator_start
        with phase("ingest", results, args.tracemalloc):
            for batch in ClassificationBatch.objects.filter(status="submitted"):
                services.batch_poll(batch_id=batch.pk)

        classified = TranscriptClassification.objects.filter(status="classified").count()
        sizes = list(ClassificationBatch.objects.values_list("request_count", "size_bytes"))
        print(f"conversations: {args.conversations}, classified: {classified}, batches: {len(sizes)}")
        print("batch sizes: " + ", ".join(f"{n} req / {size / 2**20:.1f} MiB" for n, size in sizes))
        print(f"baseline RSS after seeding: {baseline:.0f} MB")
        print(f"{'phase':<10}{'seconds':>10}{'peak RSS MB':>14}" + (f"{'py heap MB':>12}" if args.tracemalloc else ""))
        for name, seconds, peak, traced in results:
            extra = f"{traced:>12.1f}" if traced is not None else ""
            print(f"{name:<10}{seconds:>10.2f}{peak:>14.0f}{extra}")
        total = sum(seconds for _, seconds, _, _ in results)
        print(f"{'total':<10}{total:>10.2f}{rss_mb():>14.0f}   (emulator processing {emulator_seconds:.1f} s excluded)")
        print(
            f"targets: total <= 20 s -> {'ok' if total <= 20 else 'MISSED'}; "
            f"peak RSS <= 150 MB -> {'ok' if rss_mb() <= 150 else 'MISSED'}"
        )
    finally:
        emulator.stdin.close()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
