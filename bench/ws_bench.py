"""Websocket chat under load: time to first delta, throughput, lost text, and memory per idle socket.

    .venv/bin/python bench/ws_bench.py                      # starts its own emulator + uvicorn, N = 1 50 200 500
    .venv/bin/python bench/ws_bench.py --idle 5000          # also 5,000 idle sockets (memory per connection)
    .venv/bin/python bench/ws_bench.py --url ws://127.0.0.1:8000/ws/chat/   # a running server (same DATABASE_URL)

First, sequential latency (--sequential K): K questions one after another, each the first of a new
conversation on a socket opened before the clock starts, alternating rounds of 10 with K bare-SDK
requests of the same body against the same emulator, so both see the same machine; it prints both
p50s and their ratio (issue 4's target: <= 1.5x). The bare SDK reads each stream to its end, as the
chat client reads every answer (`--sdk-reads first` stops it at the first token instead: its requests
then run back to back on warm caches against an emulator spared the rest of each answer, a cadence
the chat client never has).

Then CPU per answered question (--cpu N): N questions on sockets opened beforehand (each the first of
a new conversation), one after another and then all at once; the server's user + system CPU time
(all its processes, from /proc) per answered question, against the CPU this process spends with the
bare SDK to stream the same request body to its end, N times the same way, just before. The ratio is
what the product costs per question beyond reading the stream itself; the emulator's CPU is printed
beside both (it should match: the same answers were generated).

Then, per concurrency level N (N conversations at once, one question each, all sent together: a burst,
the worst case for queueing). The N sockets are opened first and the questions sent once every one
is open, so each question's clock measures the question, not the other sockets' handshakes (the
opening times are printed apart); `--repeat R` runs R bursts per level, since the tail varies:
- time to first delta (TTFD) on the socket, from sending the question, p50 / p99; next to it the
  upstream's own time to first token measured in the same run with the bare `anthropic` SDK straight
  against the emulator at the same concurrency; the difference is what Django + Channels + the gateway
  add (auth, storing the question, the prompt version, the account context, the LLM call log);
- when the `ack` arrived (the question is stored): the part of the first-delta time spent before the
  upstream call starts;
- throughput: answers/s and delta frames/s, and errors (error frames, timeouts);
- lost / reordered text: the text each client assembled from its deltas must equal the stored answer.
- CPU used by the server (all its processes), the emulator and this client from the burst to the last
  `ack`: on a shared 2-core machine it shows which process the burst waits for.
Then memory per idle connection: server RSS growth divided by the number of idle authenticated sockets.

The server is the product's own `manage.py serve`; `--workers N --redis-url redis://…` runs it as
several processes sharing Redis, as in production (more than one process needs Redis).

The server runs with `ws_per_message_deflate=False`: permessage-deflate keeps a zlib context per socket
(about 316 KiB per connection vs ~64 KiB without, uvicorn#1862) and spends CPU compressing every small
delta frame (~14 % of burst CPU in Open WebUI's measurements) for little gain on short JSON frames.
`--deflate-compare` repeats the idle measurement with deflate on to show the difference here.

Against older code in the same run (--baseline-tree PATH): PATH is another checkout, e.g.

    git worktree add /tmp/base <commit>
    .venv/bin/python bench/ws_bench.py --baseline-tree /tmp/base --levels 50 --idle 2000

Its `manage.py serve` runs beside this tree's, with its own database (a temporary SQLite one, or
BENCH_BASELINE_DATABASE_URL) migrated and filled by its own code, against the same emulator. Every
phase measures both servers, interleaved (the sequential rounds alternate SDK / this tree / SDK /
baseline), each against the bare SDK sending its own request body; the last lines print each
figure's change against the baseline.

Everything runs on loopback; the loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The servers under test, their data and their readings; imported here under their former names too
# (bench/load_soak.py and bench/inbox_fanout_bench.py use them from this module).
from bench._servers import (  # noqa: E402
    QUESTION,
    Target,
    cpu_seconds,
    free_port,
    gateway_params,
    loop_cpu_seconds,
    make_users,
    prepare_here,
    raise_fd_limit,
    rss_kib,
    server_env,
    setup_django,
    start_emulator,
    start_server,
    start_target,
    stop_processes,
    stored_texts,
)

__all__ = ["ROOT", "free_port", "gateway_params", "make_users", "raise_fd_limit", "rss_kib", "server_env"]
__all__ += ["setup_django", "start_emulator", "start_server", "stop_processes", "stored_texts"]


# --------------------------------------------------------------------------------------------------
# measurements


@dataclass
class Run:
    ttfd: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    after_ack: list[float] = field(default_factory=list)  # from the ack to the first delta
    frames: int = 0
    answers: int = 0
    errors: list[str] = field(default_factory=list)
    shown: dict[int, str] = field(default_factory=dict)  # reply id -> text assembled from deltas
    connects: list[float] = field(default_factory=list)  # connect -> `conversation` frame, per open socket
    expected: int = 0  # sockets that must be open (or have failed) before the questions go
    all_open: asyncio.Event = field(default_factory=asyncio.Event)
    # CPU seconds used by each watched process (server, emulator, this client) while the questions were
    # being stored: from the burst's start to the last `ack`.
    watched: dict[str, int] = field(default_factory=dict)
    cpu_at_go: dict[str, float] = field(default_factory=dict)
    cpu_to_last_ack: dict[str, float] = field(default_factory=dict)
    sdk_cpu: dict[str, float] = field(default_factory=dict)  # the bare-SDK burst, to its last first token

    def cpu_now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.watched.items()}

    def acked(self, elapsed: float) -> None:
        self.acks.append(elapsed)
        if len(self.acks) == len(self.connects) and self.cpu_at_go:
            now = self.cpu_now()
            self.cpu_to_last_ack = {name: now[name] - self.cpu_at_go[name] for name in now}

    def connected(self) -> None:
        """One socket is open (or failed to open); the last one releases the burst."""
        self.expected -= 1
        if self.expected <= 0:
            self.all_open.set()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_conversation(url: str, cookie: str, run: Run, timeout: float, go: asyncio.Event) -> None:
    import websockets

    headers = {"Cookie": cookie, "Origin": "http://127.0.0.1"}
    counted = False
    try:
        opening = time.perf_counter()
        async with websockets.connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            counted = True
            run.connected()
            if hello.get("type") != "conversation":
                run.errors.append(f"connect: {hello}")
                return
            run.connects.append(time.perf_counter() - opening)  # opened a conversation: its ack is awaited
            await go.wait()
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "text": QUESTION, "client_id": str(uuid.uuid4())}))
            text, first, acked = "", None, 0.0
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                run.frames += 1
                kind = frame.get("type")
                if kind == "ack":
                    acked = time.perf_counter() - started
                    run.acked(acked)
                if kind == "delta":
                    if first is None:
                        first = time.perf_counter() - started
                        run.after_ack.append(first - acked)
                    text += frame["text"]
                elif kind == "reset":
                    text = ""
                elif kind == "done":
                    run.answers += 1
                    run.shown[frame["message_id"]] = text
                    if first is not None:
                        run.ttfd.append(first)
                    if frame["status"] != "complete":
                        run.errors.append(f"status {frame['status']}")
                    return
                elif kind == "error":
                    run.errors.append(frame.get("code", "error"))
                    return
    except (TimeoutError, OSError, Exception) as exc:
        run.errors.append(type(exc).__name__)
    finally:
        if not counted:  # failed before its socket was open: the others must not wait for it
            run.connected()


def sdk_client(upstream_url: str):
    import anthropic

    return anthropic.AsyncAnthropic(base_url=upstream_url, api_key="offline-emulator-key", max_retries=0)


# How the bare-SDK baseline reads each stream: "whole" reads it to the end, as the chat client reads
# every answer (so both see the same cadence: each request follows a finished answer, and the emulator
# generates every answer in full); "first" closes it at the first token (the figures before this option,
# kept for comparison: back-to-back requests on warm caches, and an emulator spared the rest of each
# answer). Set by --sdk-reads.
SDK_READS = {"mode": "whole"}


async def sdk_first_token(client, params: dict, on_first: Callable[[], None] | None = None) -> float:
    """Seconds from sending `params` to the first text token, read with the bare SDK."""
    started = time.perf_counter()
    elapsed = None
    async with client.messages.stream(**params) as stream:
        async for _ in stream.text_stream:
            if elapsed is None:
                elapsed = time.perf_counter() - started
                if on_first is not None:
                    on_first()
                if SDK_READS["mode"] == "first":
                    break
        await stream.close()
    return elapsed if elapsed is not None else float("nan")


async def sdk_first_tokens(
    upstream_url: str, n: int, params: dict, watched: dict[str, int] | None = None
) -> tuple[list[float], dict[str, float]]:
    """The emulator's own time to first token through the bare SDK (the gateway's request body), N at once,
    and the CPU the watched processes used from the burst to the last first token."""
    client = sdk_client(upstream_url)
    watched = watched or {}
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    used: dict[str, float] = {}
    firsts = 0

    def first_token() -> None:
        nonlocal firsts
        firsts += 1
        if firsts == n:
            used.update({name: cpu_seconds(pid) - before[name] for name, pid in watched.items()})

    results = await asyncio.gather(
        *(sdk_first_token(client, params, first_token) for _ in range(n)), return_exceptions=True
    )
    await client.close()
    return [r for r in results if isinstance(r, float)], used


async def sequential_sdk(upstream_url: str, count: int, params: dict) -> list[float]:
    """The bare SDK's time to first token for `count` requests one after another (one warm client)."""
    client = sdk_client(upstream_url)
    results = [await sdk_first_token(client, params) for _ in range(count)]
    await client.close()
    return results


async def sequential_chat(
    url: str, cookie: str, count: int, timeout: float
) -> tuple[list[float], list[float], list[str]]:
    """Time to first delta and to the `ack` (the question stored) for `count` questions asked one after
    another, each the first of a new conversation (so the request equals the SDK baseline's: no
    history). The socket is open before the clock starts: only the question is timed."""
    import websockets

    ttfd: list[float] = []
    acks: list[float] = []
    errors: list[str] = []
    headers = {"Cookie": cookie, "Origin": "http://127.0.0.1"}
    for _ in range(count):
        async with websockets.connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
            await asyncio.wait_for(ws.recv(), timeout)
            started, first = time.perf_counter(), None
            await ws.send(json.dumps({"type": "message", "text": QUESTION, "client_id": str(uuid.uuid4())}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                if frame["type"] == "ack":
                    acks.append(time.perf_counter() - started)
                elif frame["type"] == "delta" and first is None:
                    first = time.perf_counter() - started
                elif frame["type"] in ("done", "error"):
                    if frame["type"] == "error" or frame.get("status") != "complete":
                        errors.append(frame.get("code") or frame.get("status", "?"))
                    break
            if first is not None:
                ttfd.append(first)
    return ttfd, acks, errors


@dataclass
class Figures:
    """What one target measured in this run, for the side-by-side comparison at the end."""

    ratio: float = float("nan")  # sequential first delta p50 / bare SDK first token p50
    idle_kib: float = float("nan")  # server RSS growth per idle socket
    cpu_ms: dict[str, float] = field(default_factory=dict)  # mode -> server CPU ms per answered question
    sdk_cpu_ms: dict[str, float] = field(default_factory=dict)  # mode -> bare SDK CPU ms per stream


# The pause before each round of the sequential comparison (see `sequential`).
SETTLE_SECONDS = 0.5


async def sequential(
    targets: list[Target], upstream_url: str, count: int, timeout: float, figures: dict[str, Figures]
) -> None:
    """Sequential first-delta latency next to the bare SDK's, alternating rounds of 10 so both (and, with
    a baseline tree, both servers) see the same machine; each server is compared with the SDK rounds
    sending its own request body."""
    ours: dict[str, list[float]] = {t.name: [] for t in targets}
    acks: dict[str, list[float]] = {t.name: [] for t in targets}
    sdk: dict[str, list[float]] = {t.name: [] for t in targets}
    errors: dict[str, list[str]] = {t.name: [] for t in targets}
    for target in targets:
        await sequential_sdk(upstream_url, 3, target.params)  # warm the emulator's cache for this prefix
        await sequential_chat(target.url, target.cookies[0], 3, timeout)  # warm the server (connection, caches)
    for index in range(max(1, count // 10)):
        # Every other round in the other order, and a pause after each server's round: the work a server
        # still does after its last answer (closing the socket, events) would otherwise fall on the SDK
        # round that follows, always the same one, and bias the comparison.
        for target in targets if index % 2 == 0 else targets[::-1]:
            await asyncio.sleep(SETTLE_SECONDS)
            sdk[target.name] += await sequential_sdk(upstream_url, 10, target.params)
            round_ttfd, round_acks, round_errors = await sequential_chat(target.url, target.cookies[0], 10, timeout)
            ours[target.name] += round_ttfd
            acks[target.name] += round_acks
            errors[target.name] += round_errors
    if len(targets) > 1:  # the two servers side by side, without the SDK rounds in between
        now, then = (pct(ours[t.name], 0.5) for t in targets[:2])
        print(f"first delta p50, this tree against the baseline tree: {now / then:.2f}x")
    for target in targets:
        mine, bare = ours[target.name], sdk[target.name]
        p50, b50 = pct(mine, 0.5) * 1000, pct(bare, 0.5) * 1000
        figures[target.name].ratio = p50 / b50
        print(
            f"{target.name}: sequential, {len(mine)} questions (each opening a new conversation): "
            f"first delta p50 {p50:.1f} ms (p90 {pct(mine, 0.9) * 1000:.1f}), "
            f"bare SDK first token p50 {b50:.1f} ms (p90 {pct(bare, 0.9) * 1000:.1f}): ratio {p50 / b50:.2f}x "
            f"(target <= 1.5x), errors {len(errors[target.name])}; "
            f"question stored (ack) p50 {pct(acks[target.name], 0.5) * 1000:.1f} ms"
        )


def served_params(upstream_url: str) -> dict | None:
    """The body of the last request the emulator received (a server's own request for QUESTION), for the
    bare SDK to send exactly what that server sends (per-request context included); None if not logged."""
    import httpx

    entries = httpx.get(f"{upstream_url}/_control/requests", params={"limit": 1}, timeout=5).json()["data"]
    body = entries[-1].get("body") if entries else None
    if not isinstance(body, dict) or "messages" not in body:
        return None
    return {key: value for key, value in body.items() if key != "stream"}


def match_served_requests(targets: list[Target], upstream_url: str, timeout: float) -> None:
    """Ask each server one question and give the bare SDK that server's request body from then on."""
    for target in targets:
        asyncio.run(sequential_chat(target.url, target.cookies[0], 1, timeout))
        target.params = served_params(upstream_url) or target.params


# --------------------------------------------------------------------------------------------------
# CPU per answered question


async def sdk_whole_stream(client, params: dict) -> None:
    async with client.messages.stream(**params) as stream:
        async for _ in stream.text_stream:
            pass


async def sdk_cpu(upstream_url: str, params: dict, n: int, at_once: bool, emulator: int) -> tuple[float, float]:
    """CPU seconds this process (the bare SDK client) and the emulator use to stream `params` `n` times,
    each read to its end, one after another or all at once; the client is built and warm first."""
    client = sdk_client(upstream_url)
    await sdk_whole_stream(client, params)
    mine, theirs = time.process_time(), cpu_seconds(emulator)
    if at_once:
        await asyncio.gather(*(sdk_whole_stream(client, params) for _ in range(n)))
    else:
        for _ in range(n):
            await sdk_whole_stream(client, params)
    used = time.process_time() - mine, cpu_seconds(emulator) - theirs
    await client.close()
    return used


async def chat_cpu(
    target: Target, n: int, at_once: bool, emulator: int, timeout: float
) -> tuple[float, float, float, int]:
    """CPU seconds the server, its event loop and the emulator use to answer `n` questions on sockets
    opened beforehand (each the first of a new conversation), one after another or all at once, and
    how many were answered."""
    import websockets

    assert target.pid is not None
    cookies = target.cookies
    sockets = []
    for index in range(n):
        headers = {"Cookie": cookies[index % len(cookies)], "Origin": "http://127.0.0.1"}
        ws = await websockets.connect(target.url, additional_headers=headers, max_size=None, compression=None)
        await asyncio.wait_for(ws.recv(), timeout)
        sockets.append(ws)

    async def ask(ws) -> bool:
        await ws.send(json.dumps({"type": "message", "text": QUESTION, "client_id": str(uuid.uuid4())}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if frame["type"] == "done":
                return frame.get("status") == "complete"
            if frame["type"] == "error":
                return False

    server, loop, emulator_before = cpu_seconds(target.pid), loop_cpu_seconds(target.pid), cpu_seconds(emulator)
    if at_once:
        answered = sum(await asyncio.gather(*(ask(ws) for ws in sockets)))
    else:
        answered = 0
        for ws in sockets:
            answered += await ask(ws)
    used = (
        cpu_seconds(target.pid) - server,
        loop_cpu_seconds(target.pid) - loop,
        cpu_seconds(emulator) - emulator_before,
    )
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return *used, answered


def cpu_per_question(
    targets: list[Target], upstream_url: str, n: int, emulator: int, timeout: float, figures: dict[str, Figures]
) -> None:
    """Server CPU per answered question against the bare SDK's CPU to read the same stream to its end,
    `n` one after another and `n` at once; each server's run follows an SDK run with its request body."""
    print(
        f"CPU per answered question, {n} questions (server: all its processes, user + system; bare SDK: "
        "this process reading the stream to its end; emulator beside each, which should match):"
    )
    for mode, at_once in (("one after another", False), (f"{n} at once", True)):
        for target in targets:
            asyncio.run(chat_cpu(target, 3, False, emulator, timeout))  # warm: first connection, caches
            client, sdk_emulator = asyncio.run(sdk_cpu(upstream_url, target.params, n, at_once, emulator))
            server, loop, chat_emulator, answered = asyncio.run(chat_cpu(target, n, at_once, emulator, timeout))
            per_question = server * 1000 / max(answered, 1)
            per_stream = client * 1000 / n
            figures[target.name].cpu_ms[mode] = per_question
            figures[target.name].sdk_cpu_ms[mode] = per_stream
            print(
                f"  {target.name}, {mode}: server {per_question:.1f} ms per answered question "
                f"({answered}/{n} answered; event loop {loop * 1000 / max(answered, 1):.1f}, worker threads "
                f"{(server - loop) * 1000 / max(answered, 1):.1f}), bare SDK {per_stream:.1f} ms per stream: "
                f"{per_question / per_stream:.2f}x; emulator {chat_emulator * 1000 / n:.1f} vs "
                f"{sdk_emulator * 1000 / n:.1f} ms"
            )


# --------------------------------------------------------------------------------------------------
# bursts and idle sockets


async def run_level(
    url: str, upstream_url: str, cookies: list[str], n: int, timeout: float, params: dict, watched: dict[str, int]
) -> tuple[Run, list[float], float]:
    baseline, run_sdk_cpu = await sdk_first_tokens(upstream_url, n, params, watched)
    run = Run(expected=n, watched=watched, sdk_cpu=run_sdk_cpu)
    conversations = [
        asyncio.ensure_future(one_conversation(url, cookie, run, timeout, run.all_open)) for cookie in cookies[:n]
    ]
    await run.all_open.wait()
    run.cpu_at_go = run.cpu_now()
    started = time.perf_counter()
    await asyncio.gather(*conversations)
    return run, baseline, time.perf_counter() - started


def report_burst(target: Target, upstream_url: str, n: int, args: argparse.Namespace, watched: dict) -> float:
    """One burst of `n` questions: prints its row and details, returns its p99 first-delta overhead (ms)."""
    run, baseline, elapsed = asyncio.run(
        run_level(target.url, upstream_url, target.cookies, n, args.timeout, target.params, watched)
    )
    if target.reads_here:
        stored = stored_texts(list(run.shown))
        text_ok = f"{sum(1 for pk, text in run.shown.items() if stored.get(pk) == text):>4}/{len(run.shown):<3}"
    else:
        text_ok = "   (not read)"
    p50, p99 = pct(run.ttfd, 0.5) * 1000, pct(run.ttfd, 0.99) * 1000
    b50, b99 = pct(baseline, 0.5) * 1000, pct(baseline, 0.99) * 1000
    print(
        f"{n:>5} {p50:>7.1f}ms {p99:>6.1f}ms {b50:>6.1f}ms {b99:>6.1f}ms {p50 - b50:>11.1f}ms "
        f"{p99 - b99:>6.1f}ms {run.answers / elapsed:>10.1f} {run.frames / elapsed:>9.0f} "
        f"{len(run.errors):>7} {text_ok}  {target.name}"
    )
    print(
        f"      question stored (ack) p50 {pct(run.acks, 0.5) * 1000:.1f}ms p99 {pct(run.acks, 0.99) * 1000:.1f}ms; "
        f"ack to first delta p50 {pct(run.after_ack, 0.5) * 1000:.1f}ms p99 {pct(run.after_ack, 0.99) * 1000:.1f}ms"
    )
    print(
        f"      sockets opened before the clock: p50 {pct(run.connects, 0.5) * 1000:.1f}ms "
        f"p99 {pct(run.connects, 0.99) * 1000:.1f}ms"
    )
    if run.cpu_to_last_ack:
        used = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in run.cpu_to_last_ack.items())
        print(f"      CPU ms from the burst to the last ack: {used}")
    if run.sdk_cpu:
        used = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in run.sdk_cpu.items() if name != "server")
        print(f"      CPU ms of the bare-SDK burst to its last first token: {used}")
    if run.errors:
        print(f"      errors: {sorted(set(run.errors))[:5]}")
    return p99 - b99


async def idle_sockets(url: str, cookie: str, count: int, pid: int | None) -> float:
    """Opens `count` idle sockets; prints and returns the server's RSS growth per socket (KiB; nan unmeasured)."""
    import websockets

    before = rss_kib(pid) if pid else 0
    sockets = []
    gate = asyncio.Semaphore(200)

    async def open_one() -> None:
        async with gate:
            ws = await websockets.connect(
                url,
                additional_headers={"Cookie": cookie, "Origin": "http://127.0.0.1"},
                open_timeout=60,
                ping_interval=None,
            )
            await asyncio.wait_for(ws.recv(), 60)
            sockets.append(ws)

    started = time.perf_counter()
    results = await asyncio.gather(*(open_one() for _ in range(count)), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    await asyncio.sleep(2)  # let the server settle
    after = rss_kib(pid) if pid else 0
    opened = len(sockets)
    per_socket = float("nan")
    print(f"  idle sockets open: {opened} (failed {failed}) in {time.perf_counter() - started:.1f} s")
    if pid and opened:
        per_socket = (after - before) / opened
        growth = f"{before / 1024:.0f} MiB -> {after / 1024:.0f} MiB"
        print(f"  server RSS {growth}: {per_socket:.1f} KiB per idle connection")
    else:
        print("  (server RSS not measured: pass no --url so the bench starts and watches the server)")
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return per_socket


def compare(figures: dict[str, Figures]) -> None:
    """This tree against the baseline tree, measured in this run: the change of each figure."""
    mine, base = figures["current"], figures["baseline"]

    def change(now: float, then: float) -> str:
        return f"{(now / then - 1) * 100:+.1f} %" if then else "n/a"

    print("this tree against the baseline tree, same run (goal: first-delta ratio and KiB per idle socket <= +10 %):")
    print(f"  sequential first-delta ratio: {mine.ratio:.2f}x vs {base.ratio:.2f}x: {change(mine.ratio, base.ratio)}")
    if mine.idle_kib == mine.idle_kib:  # not nan
        kib = f"{mine.idle_kib:.1f} vs {base.idle_kib:.1f}"
        print(f"  KiB per idle socket: {kib}: {change(mine.idle_kib, base.idle_kib)}")
    for mode, now in mine.cpu_ms.items():
        then = base.cpu_ms.get(mode, float("nan"))
        print(
            f"  server CPU per answered question, {mode}: {now:.1f} vs {then:.1f} ms: {change(now, then)} "
            f"({now / mine.sdk_cpu_ms[mode]:.2f}x vs {then / base.sdk_cpu_ms[mode]:.2f}x the bare SDK's)"
        )


def asset_sizes() -> None:
    files = [ROOT / "static/chat/chat.js", ROOT / "static/chat/chat.css"]
    raw = sum(f.stat().st_size for f in files)
    zipped = len(gzip.compress(b"".join(f.read_bytes() for f in files), compresslevel=9))
    widget = len(gzip.compress((ROOT / "static/chat/widget.js").read_bytes(), compresslevel=9))
    print(
        f"chat page JS+CSS: {raw / 1024:.1f} KiB raw, {zipped / 1024:.1f} KiB gzipped (budget 20 KiB); "
        f"widget.js {widget / 1024:.1f} KiB gzipped"
    )


# --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="ws URL of a running server (uses this environment's DATABASE_URL for users)")
    parser.add_argument("--upstream-url", help="the running server's emulator (for the SDK baseline and faults)")
    parser.add_argument("--sequential", type=int, default=50, help="questions asked one after another (0: skip)")
    parser.add_argument("--cpu", type=int, default=50, help="questions for the CPU per answered question (0: skip)")
    parser.add_argument("--levels", default="1,50,200,500", help="concurrency levels")
    parser.add_argument("--token-ms", type=int, default=10, help="emulator pace between tokens")
    parser.add_argument("--idle", type=int, default=1000, help="idle sockets for the memory figure (0: skip)")
    parser.add_argument("--deflate-compare", action="store_true", help="repeat the idle figure with deflate on")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-frame timeout, seconds")
    parser.add_argument("--workers", type=int, default=1, help="server processes (manage.py serve --workers)")
    parser.add_argument("--redis-url", default="", help="REDIS_URL for the server (else this environment's)")
    parser.add_argument("--repeat", type=int, default=1, help="bursts per concurrency level (the tail varies)")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout (e.g. `git worktree add /tmp/base <commit>`): its server is measured beside "
        "this tree's, phase by phase, against the same emulator, and the changes are printed at the end",
    )
    parser.add_argument(
        "--sdk-reads",
        choices=("whole", "first"),
        default="whole",
        help="the bare-SDK baseline reads each stream to the end (like the chat client) or stops at the first token",
    )
    args = parser.parse_args()
    SDK_READS["mode"] = args.sdk_reads
    raise_fd_limit()
    levels = [int(x) for x in args.levels.split(",") if x]
    asset_sizes()

    processes: list[subprocess.Popen] = []
    tmp = tempfile.TemporaryDirectory(prefix="ws-bench-")
    try:
        users = max([*levels, min(args.cpu, 500), 1])
        if args.url:
            url, upstream_url = args.url, args.upstream_url or os.environ.get("SUPPORTBOT_UPSTREAM_URL", "")
            env = server_env(os.environ.get("DATABASE_URL", f"sqlite:///{ROOT / 'db.sqlite3'}"), upstream_url)
            setup_django(env)
            prepared = prepare_here(users)
            users_, params, idle = prepared["users"], prepared["params"], prepared["idle_conversation"]
            target = Target("current", url, None, users_, params, idle, reads_here=True)
            targets, emulator_pid = [target], None
        else:
            em_port = free_port()
            upstream_url = f"http://127.0.0.1:{em_port}"
            processes.append(start_emulator(em_port))
            emulator_pid = processes[0].pid
            database_url = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp.name}/bench.sqlite3")
            current, env, server = start_target("current", ROOT, database_url, upstream_url, users, args)
            processes.append(server)
            targets = [current]
            if args.baseline_tree:
                base_db = os.environ.get("BENCH_BASELINE_DATABASE_URL", f"sqlite:///{tmp.name}/baseline.sqlite3")
                root = args.baseline_tree.resolve()
                baseline, _env, base_server = start_target("baseline", root, base_db, upstream_url, users, args)
                processes.append(base_server)
                targets.append(baseline)
        import httpx

        if upstream_url:
            httpx.put(f"{upstream_url}/_control/faults", json={"token_ms": args.token_ms}, timeout=5).raise_for_status()
        figures = {t.name: Figures() for t in targets}
        print(
            f"servers {', '.join(f'{t.name} {t.url}' for t in targets)}  upstream {upstream_url}  "
            f"token pace {args.token_ms} ms  deflate off  bare SDK reads: {args.sdk_reads}  "
            f"server processes: {args.workers}  "
            f"channel layer and cache: {'Redis' if env.get('REDIS_URL') else 'in process'}"
        )
        if args.baseline_tree:
            print(f"baseline tree {args.baseline_tree.resolve()} (its own database, same emulator)")
        print(f"load average before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
        if upstream_url:
            match_served_requests(targets, upstream_url, args.timeout)
        if args.sequential:
            asyncio.run(sequential(targets, upstream_url, args.sequential, args.timeout, figures))
        if args.cpu and emulator_pid:
            cpu_per_question(targets, upstream_url, args.cpu, emulator_pid, args.timeout, figures)
        if levels:
            print(
                f"{'N':>5} {'TTFD p50':>9} {'p99':>8} {'SDK p50':>8} {'p99':>8} {'overhead p50':>13} {'p99':>8} "
                f"{'answers/s':>10} {'frames/s':>9} {'errors':>7} {'text ok':>8}"
            )
        for n in levels:
            for target in targets:
                watched = {"client": os.getpid()}
                if target.pid:
                    watched = {"server": target.pid, "emulator": emulator_pid, **watched}
                overheads = [report_burst(target, upstream_url, n, args, watched) for _ in range(args.repeat)]
                if args.repeat > 1:
                    print(
                        f"      p99 overhead over {args.repeat} bursts of {n}: "
                        f"median {statistics.median(overheads):.1f}ms  {target.name}"
                    )
        if args.idle:
            for target in targets:
                print(f"{target.name}: memory per idle connection (deflate off), {args.idle} sockets:")
                idle_url = f"{target.url}?conversation={target.idle_conversation}"
                figures[target.name].idle_kib = asyncio.run(
                    idle_sockets(idle_url, target.cookies[0], args.idle, target.pid)
                )
            if args.deflate_compare and not args.url:
                port2 = free_port()
                server2 = start_server(port2, env, deflate=True)
                processes.append(server2)
                print(f"memory per idle connection (deflate ON), {args.idle} sockets:")
                asyncio.run(
                    idle_sockets(
                        f"ws://127.0.0.1:{port2}/ws/chat/?conversation={targets[0].idle_conversation}",
                        targets[0].cookies[0],
                        args.idle,
                        server2.pid,
                    )
                )
        if len(targets) > 1:
            compare(figures)
        print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    finally:
        stop_processes(processes)
        tmp.cleanup()


if __name__ == "__main__":
    main()
