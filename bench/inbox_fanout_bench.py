"""Fan-out to agents: what N agents watching a conversation cost the customer, and how fast they see it.

    .venv/bin/python bench/inbox_fanout_bench.py                 # N = 0 1 10 50 agents, 20 of each
    .venv/bin/python bench/inbox_fanout_bench.py --levels 0,100 --rounds 30

Starts its own emulator and `manage.py serve` (a temporary SQLite database unless BENCH_DATABASE_URL),
as bench/ws_bench.py does. Per level N, a fresh conversation of one customer, N agents with the inbox
open on it (each `watch`es it) and the customer's chat socket on it; then:

1. the assistant answers `--rounds` questions one after another: time to the first delta on the
   customer's socket (the figure agents must not slow down) and on the last agent's socket;
2. an agent claims the conversation and sends `--rounds` replies over HTTP (the inbox's reply
   endpoint): time from the POST to `message_added` on the customer's socket and on the last agent's.

N = 0 is the baseline, measured in the same run on the same machine: the figures to read are each
level's p50 against it. It prints figures and asserts nothing; loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ws_bench import (  # noqa: E402
    free_port,
    raise_fd_limit,
    server_env,
    setup_django,
    start_emulator,
    start_server,
    stop_processes,
)

QUESTION = "How do I download my last invoice?"
CSRF = "b" * 32  # the same token in the cookie and the header: what Django's CSRF check compares


def login(username: str, *, agent: bool) -> tuple[int, str]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from apps.accounts.models import CustomerAccount
    from apps.inbox.services import agent_make

    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"first_name": username.title()})
    if agent:
        agent_make(user=user)
    else:
        CustomerAccount.objects.get_or_create(user=user, defaults={"plan": "pro"})
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return user.pk, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def new_conversation(user_id: int) -> str:
    from apps.chat.models import Conversation

    return str(Conversation.objects.create(user_id=user_id, title="fan-out bench").pk)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def recv_type(ws, kinds: tuple[str, ...], timeout: float) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") in kinds:
            return frame


async def level(
    base: str, customer: str, owner: str, agents: list[str], conversation: str, rounds: int, timeout: float
) -> dict:
    import httpx
    import websockets

    ws_base = base.replace("http://", "ws://")
    origin = {"Origin": base}
    inboxes = []
    for cookie in agents:
        ws = await websockets.connect(
            f"{ws_base}/ws/inbox/", additional_headers={"Cookie": cookie, **origin}, compression=None, max_size=None
        )
        await recv_type(ws, ("inbox",), timeout)
        await ws.send(json.dumps({"type": "watch", "conversation": conversation}))
        await recv_type(ws, ("watching",), timeout)
        inboxes.append(ws)
    chat = await websockets.connect(
        f"{ws_base}/ws/chat/?conversation={conversation}",
        additional_headers={"Cookie": customer, **origin},
        compression=None,
        max_size=None,
    )
    await recv_type(chat, ("conversation",), timeout)
    figures: dict[str, list[float]] = {
        "ttfd_customer": [],
        "ttfd_last_agent": [],
        "msg_customer": [],
        "msg_last_agent": [],
    }

    async def first_of(ws, kinds: tuple[str, ...], started: float) -> float:
        await recv_type(ws, kinds, timeout)
        return time.perf_counter() - started

    for round_ in range(rounds + 1):  # 1. the assistant answers; every agent watches the tokens (round 0 warms up)
        started = time.perf_counter()
        await chat.send(json.dumps({"type": "message", "text": QUESTION, "client_id": str(uuid.uuid4())}))
        customer_first = asyncio.ensure_future(first_of(chat, ("delta",), started))
        agent_firsts = [asyncio.ensure_future(first_of(ws, ("delta",), started)) for ws in inboxes]
        customer_ttfd = await customer_first
        agents_ttfd = await asyncio.gather(*agent_firsts)
        if round_:
            figures["ttfd_customer"].append(customer_ttfd)
            if agents_ttfd:
                figures["ttfd_last_agent"].append(max(agents_ttfd))
        await recv_type(chat, ("done", "error"), timeout)
        await asyncio.gather(*(recv_type(ws, ("done", "error"), timeout) for ws in inboxes))

    # 2. A person (`owner`, who has no inbox open) answers: the reply reaches the customer and every agent.
    if rounds:
        headers = {"Cookie": f"{owner}; csrftoken={CSRF}", "X-CSRFToken": CSRF, "X-Requested-With": "fetch"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout) as http:
            (await http.post(f"/inbox/c/{conversation}/claim/")).raise_for_status()
            await recv_type(chat, ("conversation_state",), timeout)
            for index in range(rounds):
                started = time.perf_counter()
                customer_got = asyncio.ensure_future(first_of(chat, ("message_added",), started))
                agents_got = [asyncio.ensure_future(first_of(ws, ("message_added",), started)) for ws in inboxes]
                (await http.post(f"/inbox/c/{conversation}/reply/", data={"text": f"Reply {index}"})).raise_for_status()
                figures["msg_customer"].append(await customer_got)
                if agents_got:
                    figures["msg_last_agent"].append(max(await asyncio.gather(*agents_got)))
    for ws in [chat, *inboxes]:
        await ws.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="0,1,10,50", help="agents watching the conversation (0: the baseline)")
    parser.add_argument("--rounds", type=int, default=20, help="questions, then agent replies, per level")
    parser.add_argument("--token-ms", type=int, default=10, help="emulator pace between tokens")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    raise_fd_limit()
    levels = [int(x) for x in args.levels.split(",") if x]
    processes: list[subprocess.Popen] = []
    tmp = tempfile.TemporaryDirectory(prefix="inbox-bench-")
    try:
        import os

        import httpx

        em_port, port = free_port(), free_port()
        upstream_url = f"http://127.0.0.1:{em_port}"
        env = server_env(os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp.name}/bench.sqlite3"), upstream_url)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        processes.append(start_emulator(em_port))
        processes.append(start_server(port, env))
        httpx.put(f"{upstream_url}/_control/faults", json={"token_ms": args.token_ms}, timeout=5).raise_for_status()
        setup_django(env)
        from apps.prompts.services import prompt_seed_defaults

        prompt_seed_defaults()
        customer_id, customer = login("bench-customer", agent=False)
        owner = login("bench-owner", agent=True)[1]  # claims and replies; watches nothing
        agents = [login(f"bench-agent-{i}", agent=True)[1] for i in range(max(levels, default=0))]
        base = f"http://127.0.0.1:{port}"
        print(f"server {base}  token pace {args.token_ms} ms  {args.rounds} rounds per level  (times in ms)")
        print(
            f"{'agents':>6} {'TTFD cust p50':>14} {'p90':>7} {'vs N=0':>7} {'TTFD last agent p50':>20} "
            f"{'reply→cust p50':>15} {'p90':>7} {'vs N=0':>7} {'reply→last agent p50':>21} {'p90':>7}"
        )
        baseline: dict[str, float] = {}
        for n in levels:
            figures = asyncio.run(
                level(base, customer, owner, agents[:n], new_conversation(customer_id), args.rounds, args.timeout)
            )
            ttfd = statistics.median(figures["ttfd_customer"]) * 1000
            reply = statistics.median(figures["msg_customer"]) * 1000
            baseline = baseline or {"ttfd": ttfd, "reply": reply}
            print(
                f"{n:>6} {ttfd:>14.1f} {pct(figures['ttfd_customer'], 0.9):>7.1f} {ttfd / baseline['ttfd']:>6.2f}x "
                f"{pct(figures['ttfd_last_agent'], 0.5):>20.1f} {reply:>15.1f} "
                f"{pct(figures['msg_customer'], 0.9):>7.1f} {reply / baseline['reply']:>6.2f}x "
                f"{pct(figures['msg_last_agent'], 0.5):>21.1f} {pct(figures['msg_last_agent'], 0.9):>7.1f}"
            )
    finally:
        stop_processes(processes)
        tmp.cleanup()


if __name__ == "__main__":
    main()
