"""Does the chat path leak Python objects? A tracemalloc diff over many answers, in one process.

Runs the real ASGI application with Channels' WebsocketCommunicator against the offline upstream (in a
thread) on a throw-away SQLite database (or --database-url, e.g. a fresh PostgreSQL database): warms
up, snapshots the Python heap, answers `--rounds` × `--sockets` × `--questions` questions, and prints
after every round the live Python heap (tracemalloc), the number of gc-tracked objects and the
process's anonymous RSS, so linear growth (a leak) and a plateau (caches filling) can be told apart;
then the total growth, its top sources and the object types whose count grew most.
RSS growth that does not show up here lives outside the Python heap (the database driver, the
allocator), not in objects our code keeps.

By default every socket starts a new conversation (a stationary workload). --same-conversation
reconnects each socket to the conversation it used in the previous round, like bench/load_soak.py's
long-lived sessions: the history sent with every question then grows round after round.

    .venv/bin/python bench/heap_probe.py [--rounds 6] [--sockets 10] [--questions 5]
    .venv/bin/python bench/heap_probe.py --database-url postgres://postgres@127.0.0.1:5432/heapprobe
"""

import argparse
import asyncio
import collections
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
import weakref
from pathlib import Path


def setup_django(database_url: str) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="supportbot.settings.local", DATABASE_URL=database_url, DEBUG="false")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)


def anon_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def type_counts() -> collections.Counter:
    """gc-tracked objects by type, plus weak references by the type of what they point to ("weakref->T")."""
    counts: collections.Counter = collections.Counter()
    for o in gc.get_objects():
        counts[type(o).__qualname__] += 1
        if type(o) is weakref.ReferenceType:
            counts[f"weakref->{type(o()).__qualname__}"] += 1
    return counts


def describe_holders(objects: list) -> str:
    """Who references these objects: the holder's type and, for a dict or list, what holds that (2 levels)."""
    ignore = {id(objects)}
    holders: collections.Counter = collections.Counter()
    for o in objects:
        for holder in gc.get_referrers(o):
            if id(holder) in ignore or type(holder).__name__ == "frame":
                continue
            name = f"{type(holder).__module__}.{type(holder).__qualname__}"
            if isinstance(holder, (dict, list, set, deque_type)):
                outer = [
                    f"{type(h).__module__}.{type(h).__qualname__}"
                    for h in gc.get_referrers(holder)
                    if id(h) not in ignore and type(h).__name__ not in ("frame", "list")
                ][:2]
                if isinstance(holder, dict):
                    owners = [h for h in gc.get_referrers(holder) if hasattr(h, "__dict__") and h.__dict__ is holder]
                    if owners:
                        outer = [f"{type(owners[0]).__module__}.{type(owners[0]).__qualname__}.__dict__"]
                name += f" in {'/'.join(outer) or '?'}"
            holders[name] += 1
    return ", ".join(f"{name} ×{n}" for name, n in holders.most_common(4)) or "nothing (unreachable)"


deque_type = collections.deque


async def one_socket(application, cookie: bytes, questions: int, conversation: dict | None = None) -> None:
    """Connect (to `conversation["id"]` when set), ask `questions` questions, disconnect."""
    from channels.testing import WebsocketCommunicator

    path = "/ws/chat/"
    if conversation is not None and conversation.get("id"):
        path += f"?conversation={conversation['id']}"
    socket = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)])
    await socket.connect(timeout=60)
    hello = json.loads(await socket.receive_from(timeout=60))
    if conversation is not None:
        conversation["id"] = hello.get("id")
    for index in range(questions):
        frame = {"type": "message", "text": f"How do I reset my password ({index})?", "client_id": str(uuid.uuid4())}
        await socket.send_to(text_data=json.dumps(frame))
        for _ in range(100_000):  # bounded: an answer is a few hundred frames
            if json.loads(await socket.receive_from(timeout=120))["type"] in ("done", "error"):
                break
    await socket.disconnect()


async def run(args: argparse.Namespace) -> None:
    from channels.db import database_sync_to_async
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from apps.upstream.testing import start_upstream_in_thread
    from supportbot.asgi import application

    upstream = start_upstream_in_thread()
    settings.OFFLINE_UPSTREAM_URL = upstream.base_url

    def cookie_for_bob() -> bytes:
        bob = get_user_model().objects.get(username="bob")
        session = SessionStore()
        session.update(
            {
                "_auth_user_id": str(bob.pk),
                "_auth_user_backend": settings.AUTHENTICATION_BACKENDS[0],
                "_auth_user_hash": bob.get_session_auth_hash(),
            }
        )
        session.create()
        return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()

    cookie = await database_sync_to_async(cookie_for_bob)()
    conversations = [{} if args.same_conversation else None for _ in range(args.sockets)]

    async def one_round() -> None:
        await asyncio.gather(*(one_socket(application, cookie, args.questions, c) for c in conversations))

    for _ in range(args.warmup):  # warm-up: caches, connections, pools
        await one_round()
    gc.collect()
    types_before = type_counts()  # before tracing, so the probe's own Counter is not counted as growth
    dead_before = {id(o) for o in gc.get_objects() if type(o) is weakref.ReferenceType and o() is None}
    tracemalloc.start(12)
    before = tracemalloc.take_snapshot()
    per_round = args.sockets * args.questions
    print(
        f"{'round':>5} {'answers':>7} {'heap KiB':>9} {'Δ KiB':>8} {'objects':>8} {'Δ obj':>7} "
        f"{'anon RSS MiB':>12} {'s':>5}"
    )
    heap = [tracemalloc.get_traced_memory()[0]]
    objects = [len(gc.get_objects())]
    print(f"{0:>5} {0:>7} {heap[0] / 1024:>9.0f} {'':>8} {objects[0]:>8} {'':>7} {anon_rss_kib() / 1024:>12.1f}")
    for number in range(1, args.rounds + 1):
        started = time.perf_counter()
        await one_round()
        gc.collect()
        heap.append(tracemalloc.get_traced_memory()[0])
        objects.append(len(gc.get_objects()))
        print(
            f"{number:>5} {number * per_round:>7} {heap[-1] / 1024:>9.0f} {(heap[-1] - heap[-2]) / 1024:>+8.1f} "
            f"{objects[-1]:>8} {objects[-1] - objects[-2]:>+7} {anon_rss_kib() / 1024:>12.1f} "
            f"{time.perf_counter() - started:>5.1f}"
        )
    after = tracemalloc.take_snapshot()
    types_after = type_counts()  # after the snapshot (the Counter is not in it), before the diff's own objects
    stats = after.compare_to(before, "traceback")
    after = None
    answers = args.rounds * per_round
    growth = sum(stat.size_diff for stat in stats)
    print(f"Python heap growth over {answers} answers: {growth / 1024:.1f} KiB ({growth / answers:.0f} B per answer)")
    if args.rounds >= 4:
        half = args.rounds // 2
        first = (heap[half] - heap[0]) / (half * per_round)
        last = (heap[-1] - heap[half]) / ((args.rounds - half) * per_round)
        print(f"  per answer: first half of the rounds {first:+.0f} B, last half {last:+.0f} B")
    for stat in stats[: args.top]:
        frame = stat.traceback[-1]
        print(f"  {stat.size_diff / 1024:+8.1f} KiB  {stat.count_diff:+6d} blocks  {frame.filename}:{frame.lineno}")
        if args.trace:
            for line in stat.traceback.format()[-2 * args.trace :]:
                print(f"      {line}")
    grown = (types_after - types_before).most_common(args.top)
    print("gc-tracked objects whose count grew: " + (", ".join(f"{name} +{n}" for name, n in grown) or "none"))
    dead = [
        o for o in gc.get_objects() if type(o) is weakref.ReferenceType and o() is None and id(o) not in dead_before
    ]
    if dead:
        print(f"{len(dead)} new dead weak references; kept by: {describe_holders(dead[:200])}")
    upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sockets", type=int, default=10)
    parser.add_argument("--questions", type=int, default=5, help="questions per socket per round")
    parser.add_argument("--warmup", type=int, default=3, help="rounds before the first snapshot")
    parser.add_argument(
        "--same-conversation",
        action="store_true",
        help="each socket keeps its conversation across rounds (growing history)",
    )
    parser.add_argument("--database-url", help="a fresh (empty) database; default a throw-away SQLite file")
    parser.add_argument("--top", type=int, default=5, help="sources / types to list")
    parser.add_argument("--trace", type=int, default=0, help="caller frames to print for each top source")
    args = parser.parse_args()
    if not (0 < args.rounds <= 1000 and 0 < args.sockets <= 500 and 0 < args.questions <= 100):
        parser.error("--rounds 1..1000, --sockets 1..500, --questions 1..100")
    with tempfile.TemporaryDirectory() as directory:
        setup_django(args.database_url or f"sqlite:///{Path(directory) / 'heap_probe.sqlite3'}")
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
