"""Does the chat path leak Python objects? A tracemalloc diff over many answers, in one process.

Runs the real ASGI application with Channels' WebsocketCommunicator against the offline upstream (in a
thread) on a throw-away SQLite database: warms up, snapshots the Python heap, answers
`--rounds` × `--sockets` × 5 questions, snapshots again and prints the growth and its top sources.
RSS growth that does not show up here lives outside the Python heap (SQLite's page cache, the
allocator), not in objects our code keeps.

    .venv/bin/python bench/heap_probe.py [--rounds 6] [--sockets 10]
"""

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import tracemalloc
import uuid
from pathlib import Path

QUESTIONS_PER_SOCKET = 5


def setup_django(database: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="supportbot.settings.local", DATABASE_URL=f"sqlite:///{database}", DEBUG="false"
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)


async def one_socket(application, cookie: bytes) -> None:
    from channels.testing import WebsocketCommunicator

    socket = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)]
    )
    await socket.connect(timeout=60)
    await socket.receive_from(timeout=60)
    for index in range(QUESTIONS_PER_SOCKET):
        frame = {"type": "message", "text": f"How do I reset my password ({index})?", "client_id": str(uuid.uuid4())}
        await socket.send_to(text_data=json.dumps(frame))
        while json.loads(await socket.receive_from(timeout=120))["type"] not in ("done", "error"):
            pass
    await socket.disconnect()


async def run(rounds: int, sockets: int) -> None:
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
        session.update({"_auth_user_id": str(bob.pk), "_auth_user_backend": settings.AUTHENTICATION_BACKENDS[0],
                        "_auth_user_hash": bob.get_session_auth_hash()})
        session.create()
        return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()

    cookie = await database_sync_to_async(cookie_for_bob)()
    for _ in range(3):  # warm-up: caches, connections, pools
        await asyncio.gather(*(one_socket(application, cookie) for _ in range(sockets)))
    gc.collect()
    tracemalloc.start(12)
    before = tracemalloc.take_snapshot()
    for _ in range(rounds):
        await asyncio.gather(*(one_socket(application, cookie) for _ in range(sockets)))
    gc.collect()
    stats = tracemalloc.take_snapshot().compare_to(before, "traceback")
    answers = rounds * sockets * QUESTIONS_PER_SOCKET
    growth = sum(stat.size_diff for stat in stats)
    print(f"Python heap growth over {answers} answers: {growth / 1024:.1f} KiB ({growth / answers:.0f} B per answer)")
    for stat in stats[:5]:
        frame = stat.traceback[-1]
        print(f"  {stat.size_diff / 1024:+8.1f} KiB  {stat.count_diff:+6d} blocks  {frame.filename}:{frame.lineno}")
    upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sockets", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        setup_django(Path(directory) / "heap_probe.sqlite3")
        asyncio.run(run(args.rounds, args.sockets))


if __name__ == "__main__":
    main()
