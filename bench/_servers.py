"""The servers bench/ws_bench.py measures: their processes, users, request body and CPU/memory readings.

A server under test is this tree's `manage.py serve`, or, with `--baseline-tree`, another checkout's
(its own database migrated by its own code, against the same emulator). That checkout's users and
request body are prepared by running this file there (`prepare_elsewhere`), so its models and its
gateway build them, not this tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The source tree whose code this process imports: this one, or another checkout's when this file
# runs there to prepare that checkout's server (prepare_elsewhere sets BENCH_APP_ROOT).
sys.path.insert(0, os.environ.get("BENCH_APP_ROOT") or str(ROOT))

QUESTION = "How do I download my last invoice?"


# -- processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port}")


def server_env(db_url: str, upstream_url: str, redis_url: str = "", *, root: Path = ROOT) -> dict[str, str]:
    """The server's environment: this one's (REDIS_URL included, unless `redis_url` replaces it); `root`
    is the source tree it runs (another one with --baseline-tree)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(
        DJANGO_SETTINGS_MODULE="supportbot.settings.local",
        DEBUG="false",
        DATABASE_URL=db_url,
        SUPPORTBOT_UPSTREAM_URL=upstream_url,
        CHAT_RATE_LIMIT_PER_MINUTE="1000000",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        PYTHONPATH=str(root),
    )
    return env


def start_emulator(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.upstream", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        preexec_fn=raise_fd_limit,
    )
    wait_port(port)
    return process


def start_server(
    port: int, env: dict[str, str], *, workers: int = 1, deflate: bool = False, root: Path = ROOT
) -> subprocess.Popen:
    """The product's own command, `manage.py serve --workers N`, from the source tree `root`; with
    `deflate`, plain uvicorn with permessage-deflate on instead (a configuration we do not ship,
    measured for comparison)."""
    if deflate:
        args = ["-m", "uvicorn", "supportbot.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--ws-per-message-deflate", "true", "--no-access-log", "--log-level", "warning"]
    else:
        args = ["manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen([sys.executable, *args], cwd=root, env=env, preexec_fn=raise_fd_limit)
    wait_port(port)
    return process


def server_pids(pid: int) -> list[int]:
    """The server process and its worker processes (`serve --workers N` runs them as children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return [pid, *workers]


def stop_processes(processes: list[subprocess.Popen], timeout: float = 15) -> None:
    """Terminate the bench's children, newest first (server before emulator); kill what ignores it."""
    for process in reversed(processes):
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process (and, for the server, its workers) has used so far."""
    total = 0
    for one in server_pids(pid):
        fields = Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def loop_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server's main threads (their event loops; the ORM work runs on
    worker threads), the processes' totals minus this being the worker threads' share."""
    total = 0
    for one in server_pids(pid):
        fields = Path(f"/proc/{one}/task/{one}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of the server: the process and its workers."""
    total = 0
    for one in server_pids(pid):
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# -- data (through the ORM, with the server's database settings) -------------------------------------


def setup_django(env: dict[str, str]) -> None:
    for key in ("DJANGO_SETTINGS_MODULE", "DEBUG", "DATABASE_URL", "SUPPORTBOT_UPSTREAM_URL"):
        os.environ[key] = env[key]
    import django

    django.setup()


def make_users(count: int) -> list[tuple[int, str]]:
    """`count` bench customers with a logged-in session each: [(user id, cookie header)]."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from apps.accounts.models import CustomerAccount
    from apps.prompts.services import prompt_seed_defaults

    prompt_seed_defaults()
    users = []
    for index in range(count):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-{index}")
        CustomerAccount.objects.get_or_create(user=user, defaults={"plan": "pro"})
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        users.append((user.pk, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"))
    return users


def stored_texts(ids: list[int]) -> dict[int, str]:
    from apps.chat.models import Message

    return dict(Message.objects.filter(pk__in=ids).values_list("pk", "text"))


def idle_conversation(user_id: int) -> str:
    from apps.chat.models import Conversation

    return str(Conversation.objects.create(user_id=user_id, title="idle bench").pk)


def gateway_params() -> dict:
    """The exact request body the gateway sends for QUESTION (same prompt size, same cache prefix)."""
    from django.contrib.auth import get_user_model

    from apps.accounts.selectors import account_context_for_user
    from apps.llm.gateway import preview_request
    from apps.prompts.selectors import prompt_version_active

    user = get_user_model().objects.get(username="bench-0")
    parts = prompt_version_active(slug="support-assistant").to_parts()
    context = account_context_for_user(user).render()
    params = dict(preview_request(parts, QUESTION, context, plan_tier="pro").params)
    params.pop("stream", None)
    return params


@dataclass
class Target:
    """A server under test: this tree's, or the baseline tree's (--baseline-tree), each with its own
    database, users and request body, against the one emulator."""

    name: str
    url: str
    pid: int | None
    users: list[tuple[int, str]]  # (user id, cookie header)
    params: dict  # the request body its gateway sends for QUESTION, for the bare SDK beside it
    idle_conversation: str
    reads_here: bool  # its database is read through this process's ORM (the streamed = stored check)

    @property
    def cookies(self) -> list[str]:
        return [cookie for _, cookie in self.users]


# -- the servers under test -------------------------------------------------------------------------


def prepare_here(count: int) -> dict:
    """Users, the gateway's request body and an idle conversation, through this process's ORM."""
    users = make_users(count)
    return {"users": users, "params": gateway_params(), "idle_conversation": idle_conversation(users[0][0])}


def prepare_elsewhere(root: Path, env: dict[str, str], count: int) -> dict:
    """The same, through another source tree's code and database: this script runs there with
    BENCH_APP_ROOT (its models and request building, not this tree's) and prints them as JSON."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(count)],
        cwd=root,
        env={**env, "BENCH_APP_ROOT": str(root)},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_target(
    name: str, root: Path, database_url: str, upstream_url: str, users: int, args: argparse.Namespace
) -> tuple[Target, dict[str, str], subprocess.Popen]:
    """Migrates `root`'s database and starts its `manage.py serve`; returns the target, its environment
    and its process."""
    env = server_env(database_url, upstream_url, args.redis_url, root=root)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=root, env=env, check=True)
    port = free_port()
    server = start_server(port, env, workers=args.workers, root=root)
    here = root == ROOT
    if here:
        setup_django(env)
        prepared = prepare_here(users)
    else:
        prepared = prepare_elsewhere(root, env, users)
    target = Target(
        name=name,
        url=f"ws://127.0.0.1:{port}/ws/chat/",
        pid=server.pid,
        users=[tuple(user) for user in prepared["users"]],
        params=prepared["params"],
        idle_conversation=prepared["idle_conversation"],
        reads_here=here,
    )
    return target, env, server


if __name__ == "__main__":  # prepare_elsewhere's entry point: `python bench/_servers.py COUNT`
    import django

    django.setup()
    print(json.dumps(prepare_here(int(sys.argv[1]))))
