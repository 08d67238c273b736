"""Load and soak test of the chat websocket: N sessions held open, each asking question after question.

    .venv/bin/python bench/load_soak.py                       # 200 sessions x 3 questions (load)
    .venv/bin/python bench/load_soak.py --sessions 500 --messages 2
    .venv/bin/python bench/load_soak.py --soak 600            # steady load for 10 minutes (soak)
    .venv/bin/python bench/load_soak.py --soak 1200 --turns 20 --warmup 300   # stationary soak (see below)
    .venv/bin/python bench/load_soak.py --url ws://127.0.0.1:8000/ws/chat/ --upstream-url http://127.0.0.1:8100

Without --url it starts the offline upstream (apps.upstream) and one uvicorn server process on free
loopback ports with a throw-away SQLite database (BENCH_DATABASE_URL selects another, e.g. PostgreSQL);
with --url it drives a running server whose database is this environment's DATABASE_URL.

Load mode reports, for N concurrent sessions:
- time to first delta (TTFD) from sending a question, p50 / p99, and its overhead over the bare SDK's
  own time to first token measured against the same upstream at the same concurrency just before;
- messages per second (answered questions), error frames / timeouts / broken sockets;
- memory per connection: server RSS after opening the N authenticated sockets minus RSS before,
  divided by N (only when this script started the server, so it can read its /proc entry).

Soak mode (--soak SECONDS) keeps the same N sessions asking (with --think seconds between an answer
and the next question), samples the server's RSS (and its anonymous / file-backed parts, threads and
open fds) every --sample seconds and prints the trend as least-squares slopes in MiB per minute:
- overall, over every sample (includes warm-up, so it overstates a process that later plateaus);
- after warm-up: samples from --warmup seconds on (default 20 % of --soak), when the per-process caches,
  DB connections, allocator arenas and metric label sets have filled;
- first half / last half of the post-warm-up samples: a plateau shows as a last-half slope near zero,
  a leak as a last-half slope about as steep as the first half's;
plus the growth per answer after warm-up (KiB of RSS per answered question). --max-slope MiB/min makes
the exit status 1 when the last-half slope exceeds it; --csv PATH writes every sample.

A session keeps one conversation, so every answer carries the whole history before it (the gateway
folds it into a summary only near the model's context budget): each request is larger than the last,
and the server's peak memory grows with the conversations even without a leak. --turns N makes each
session reconnect and start a new conversation after N questions, so the load is stationary and any
RSS growth left after warm-up is the server keeping something (a leak); it also exercises connect /
disconnect on every reconnection.

Both modes finish with the lost-message check: every question sent got exactly one terminal frame
(`done` or `error`) for its reply, no frame arrived for a reply nobody was waiting for, and the text
each client assembled from its deltas equals the answer stored in the database.

Everything runs on loopback; every loop is bounded in count and time, and the script stops by itself.
Exit status 1 when there were errors or lost / mismatched messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ws_bench
from ws_bench import ROOT, free_port, pct, raise_fd_limit, rss_kib

QUESTIONS = (
    "How do I download my last invoice?",
    "Can I change my plan to enterprise?",
    "My export keeps failing, what should I do?",
    "How do I add a seat for a new colleague?",
)


@dataclass
class Stats:
    ttfd: list[float] = field(default_factory=list)
    answers: int = 0
    errors: list[str] = field(default_factory=list)
    shown: dict[int, str] = field(default_factory=dict)  # reply id -> text assembled from its deltas
    terminals: dict[int, int] = field(default_factory=dict)  # reply id -> terminal frames received
    sent: int = 0
    unexpected: int = 0  # frames for a reply this client was not waiting for
    reconnects: int = 0  # new conversations started by --turns


class Session:
    """One authenticated websocket asking questions one after another in its own conversation."""

    def __init__(self, url: str, cookie: str, stats: Stats, timeout: float) -> None:
        self.url, self.cookie, self.stats, self.timeout = url, cookie, stats, timeout
        self.ws = None

    async def open(self) -> bool:
        import websockets

        try:
            self.ws = await websockets.connect(
                self.url,
                additional_headers={"Cookie": self.cookie, "Origin": "http://127.0.0.1"},
                max_size=None,
                compression=None,
                open_timeout=self.timeout,
                ping_interval=None,
            )
            hello = json.loads(await asyncio.wait_for(self.ws.recv(), self.timeout))
        except Exception as exc:
            self.stats.errors.append(f"connect {type(exc).__name__}")
            return False
        if hello.get("type") != "conversation":
            self.stats.errors.append(f"connect {hello.get('code', hello.get('type'))}")
            return False
        return True

    async def ask(self, text: str) -> bool:
        """Send one question and read until its terminal frame. False when the socket is unusable."""
        stats = self.stats
        client_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            await self.ws.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))
            stats.sent += 1
            reply_id, shown, first = None, "", None
            while True:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), self.timeout))
                kind = frame.get("type")
                if kind == "ack":
                    if frame.get("client_id") != client_id:
                        stats.unexpected += 1
                        continue
                    reply_id = frame.get("reply_id")
                elif kind == "delta":
                    if first is None:
                        first = time.perf_counter() - started
                    shown += frame["text"]
                elif kind == "reset":
                    shown = ""
                elif kind in ("done", "error"):
                    message_id = frame.get("message_id")
                    if message_id is None or message_id != reply_id:
                        stats.unexpected += 1
                        if message_id is None:  # an error about the frame itself (rate limit, busy)
                            stats.errors.append(f"error {frame.get('code')}")
                            return True
                        continue
                    stats.terminals[message_id] = stats.terminals.get(message_id, 0) + 1
                    if kind == "error":
                        stats.errors.append(f"error {frame.get('code')}")
                        return True
                    stats.answers += 1
                    stats.shown[message_id] = shown
                    if first is not None:
                        stats.ttfd.append(first)
                    if frame.get("status") != "complete":
                        stats.errors.append(f"status {frame.get('status')}")
                    return True
        except Exception as exc:
            stats.errors.append(type(exc).__name__)
            return False

    async def drain(self, seconds: float) -> None:
        """Count stray frames after the last answer (a second terminal frame would show up here)."""
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), seconds))
                self.stats.unexpected += 1
                if frame.get("type") in ("done", "error") and frame.get("message_id") in self.stats.terminals:
                    self.stats.terminals[frame["message_id"]] += 1
        except Exception:
            return

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # already closed by the server or the network
                await self.ws.close()

    async def reconnect(self) -> bool:
        """Close the socket and open a new one in a new conversation."""
        await self.close()
        self.stats.reconnects += 1
        return await self.open()


async def run(
    args: argparse.Namespace, url: str, upstream_url: str, cookies: list[str], pid: int | None, params: dict
) -> tuple[Stats, dict]:
    n = args.sessions
    report: dict = {}
    baseline = (await ws_bench.sdk_first_tokens(upstream_url, n, params))[0] if upstream_url else []
    report["sdk"] = baseline

    stats = Stats()
    rss_before = rss_kib(pid) if pid else 0
    sessions = [Session(url, cookies[i % len(cookies)], stats, args.timeout) for i in range(n)]
    gate = asyncio.Semaphore(200)  # open in waves so the listen backlog never overflows

    async def open_one(session: Session) -> bool:
        async with gate:
            return await session.open()

    opened = await asyncio.gather(*(open_one(s) for s in sessions))
    live = [s for s, ok in zip(sessions, opened, strict=True) if ok]
    await asyncio.sleep(1.0)
    rss_open = rss_kib(pid) if pid else 0
    report.update(opened=len(live), rss_before=rss_before, rss_open=rss_open)

    samples: list[tuple[float, int]] = []
    details: list[dict] = []  # per sample: anon / file KiB, threads, fds, answers so far
    started = time.perf_counter()
    deadline = started + args.soak if args.soak else None
    hard_stop = started + (args.soak or 0) + args.max_seconds

    def take_sample() -> None:
        memory = proc_memory(pid)
        samples.append((time.perf_counter() - started, memory["rss"]))
        details.append({**memory, "answers": stats.answers})

    async def sampler() -> None:
        for _ in range(int(((args.soak or 0) + args.max_seconds) / args.sample) + 2):  # bounded
            if pid:
                take_sample()
            await asyncio.sleep(args.sample)

    async def drive(index: int, session: Session) -> None:
        asked = 0
        while time.perf_counter() < hard_stop:
            if deadline is None and asked >= args.messages:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
            if args.turns and asked and asked % args.turns == 0 and not await session.reconnect():
                break
            if not await session.ask(QUESTIONS[(index + asked) % len(QUESTIONS)]):
                break
            asked += 1
            if args.think:
                await asyncio.sleep(args.think)

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*(drive(i, s) for i, s in enumerate(live)))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(s.drain(1.0) for s in live))
    sampling.cancel()
    if pid:
        take_sample()
    await asyncio.gather(*(s.close() for s in sessions))
    report.update(elapsed=elapsed, samples=samples, details=details)
    return stats, report


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB) points in MiB per minute (0 with fewer than two points)."""
    if len(points) < 2:
        return 0.0
    xs, ys = [t / 60 for t, _ in points], [v / 1024 for _, v in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


def rss_trend(samples: list[tuple[float, int]], details: list[dict], warmup: float) -> tuple[list[str], float]:
    """Printable trend lines and the last-half slope (MiB/min) of the post-warm-up samples."""
    if len(samples) < 3:
        return ["too few RSS samples for a trend"], 0.0
    third = max(1, len(samples) // 3)
    first = statistics.mean(v for _, v in samples[:third]) / 1024
    last = statistics.mean(v for _, v in samples[-third:]) / 1024
    lines = [
        f"RSS first third {first:.1f} MiB, last third {last:.1f} MiB ({last - first:+.1f} MiB), "
        f"slope {slope(samples):+.2f} MiB/min over all {len(samples)} samples"
    ]
    after = [i for i, (t, _) in enumerate(samples) if t >= warmup]
    if len(after) < 4:
        lines.append(f"too few samples after the {warmup:.0f} s warm-up for a post-warm-up trend")
        return lines, slope(samples)
    half = len(after) // 2
    head, tail = after[: half + 1], after[half:]  # the halves share the middle sample

    def fit(indices: list[int], key: str = "rss") -> float:
        return slope([(samples[i][0], details[i][key]) for i in indices])

    a, b = after[0], after[-1]
    grown = samples[b][1] - samples[a][1]
    answered = details[b]["answers"] - details[a]["answers"]
    per_answer = f"{grown / answered:+.2f} KiB per answer" if answered else "no answers"
    minutes = (samples[b][0] - samples[a][0]) / 60
    lines += [
        f"after warm-up ({warmup:.0f} s, {len(after)} samples, {minutes:.1f} min): slope {fit(after):+.2f} MiB/min "
        f"(anon {fit(after, 'anon'):+.2f}, file {fit(after, 'file'):+.2f}); "
        f"{samples[a][1] / 1024:.1f} -> {samples[b][1] / 1024:.1f} MiB = {grown / 1024:+.1f} MiB over "
        f"{answered} answers ({per_answer})",
        f"post-warm-up halves: first half {fit(head):+.2f} MiB/min, last half {fit(tail):+.2f} MiB/min "
        f"(anon {fit(tail, 'anon'):+.2f}, file {fit(tail, 'file'):+.2f})",
        f"threads {details[a]['threads']} -> {details[b]['threads']}, open fds {details[a]['fds']} -> "
        f"{details[b]['fds']}",
    ]
    return lines, fit(tail)


def lost_check(stats: Stats) -> tuple[int, int]:
    """(replies whose terminal-frame count is not exactly one, replies whose stored text differs)."""
    wrong_terminals = sum(1 for count in stats.terminals.values() if count != 1)
    missing = stats.sent - len(stats.terminals)
    stored = ws_bench.stored_texts(list(stats.shown))
    mismatched = sum(1 for pk, text in stats.shown.items() if stored.get(pk) != text)
    return wrong_terminals + max(0, missing), mismatched


def proc_memory(pid: int) -> dict[str, int]:
    """RSS, RssAnon and RssFile in KiB, thread count and open fds of the server process."""
    values = {"rss": 0, "anon": 0, "file": 0, "threads": 0, "fds": 0}
    keys = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "Threads:": "threads"}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = keys.get(line.split(":", 1)[0] + ":")
            if key:
                values[key] = int(line.split()[1])
        values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="ws URL of a running server (users are created through DATABASE_URL)")
    parser.add_argument("--upstream-url", help="the running server's upstream (SDK baseline, token pace)")
    parser.add_argument("--sessions", type=int, default=200, help="concurrent sessions (sockets)")
    parser.add_argument("--messages", type=int, default=3, help="questions per session in load mode")
    parser.add_argument("--soak", type=float, default=0, help="soak: keep asking for this many seconds")
    parser.add_argument("--think", type=float, default=0.0, help="pause between an answer and the next question")
    parser.add_argument("--sample", type=float, default=10.0, help="RSS sampling interval, seconds")
    parser.add_argument("--token-ms", type=int, default=10, help="upstream pace between tokens")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-frame timeout, seconds")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard limit on top of --soak")
    parser.add_argument(
        "--turns",
        type=int,
        default=0,
        help="questions per conversation, then reconnect in a new one (0: one conversation)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="soak: seconds of samples left out of the post-warm-up trend (default 20%% of --soak)",
    )
    parser.add_argument(
        "--max-slope",
        type=float,
        default=None,
        help="soak: exit 1 when the last-half RSS slope exceeds this many MiB/min",
    )
    parser.add_argument("--csv", help="soak: write the RSS samples (seconds, KiB, answers, ...) to this file")
    args = parser.parse_args()
    if args.sample <= 0 or args.turns < 0:
        parser.error("--sample must be positive and --turns not negative")
    warmup = args.warmup if args.warmup is not None else 0.2 * args.soak
    if args.sessions < 1 or args.sessions > 5000:
        parser.error("--sessions must be between 1 and 5000")
    raise_fd_limit()

    processes: list[subprocess.Popen] = []
    tmp = tempfile.TemporaryDirectory(prefix="load-soak-")
    try:
        if args.url:
            url, upstream_url = args.url, args.upstream_url or os.environ.get("SUPPORTBOT_UPSTREAM_URL", "")
            env = ws_bench.server_env(os.environ.get("DATABASE_URL", f"sqlite:///{ROOT / 'db.sqlite3'}"), upstream_url)
            pid = None
        else:
            em_port, port = free_port(), free_port()
            upstream_url = f"http://127.0.0.1:{em_port}"
            db_url = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp.name}/bench.sqlite3")
            env = ws_bench.server_env(db_url, upstream_url)
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
            )
            processes.append(ws_bench.start_emulator(em_port))
            server = ws_bench.start_server(port, env)
            processes.append(server)
            pid = server.pid
            url = f"ws://127.0.0.1:{port}/ws/chat/"
        import httpx

        if upstream_url:
            httpx.put(f"{upstream_url}/_control/faults", json={"token_ms": args.token_ms}, timeout=5).raise_for_status()
        ws_bench.setup_django(env)
        users = ws_bench.make_users(min(args.sessions, 1000))
        params = ws_bench.gateway_params()
        mode = f"soak {args.soak:.0f} s, think {args.think} s" if args.soak else f"load, {args.messages} questions each"
        if args.turns:
            mode += f", new conversation every {args.turns} questions"
        print(f"server {url}  upstream {upstream_url}  {args.sessions} sessions  {mode}  token pace {args.token_ms} ms")

        too_steep = False
        stats, report = asyncio.run(run(args, url, upstream_url, [c for _, c in users], pid, params))

        sdk = report["sdk"]
        t50, t99 = pct(stats.ttfd, 0.5) * 1000, pct(stats.ttfd, 0.99) * 1000
        b50, b99 = pct(sdk, 0.5) * 1000, pct(sdk, 0.99) * 1000
        print(f"sessions open      {report['opened']}/{args.sessions}")
        print(
            f"time to 1st delta  p50 {t50:.0f} ms  p99 {t99:.0f} ms   (bare SDK at N={args.sessions}: "
            f"p50 {b50:.0f} ms  p99 {b99:.0f} ms)"
        )
        print(f"overhead           p50 {t50 - b50:+.0f} ms  p99 {t99 - b99:+.0f} ms")
        print(
            f"answers            {stats.answers} in {report['elapsed']:.1f} s = "
            f"{stats.answers / report['elapsed']:.1f} messages/s"
            + (f", {stats.reconnects} reconnections" if args.turns else "")
        )
        if pid:
            per = (report["rss_open"] - report["rss_before"]) / max(1, report["opened"])
            print(
                f"server RSS         {report['rss_before'] / 1024:.0f} MiB idle -> {report['rss_open'] / 1024:.0f} MiB "
                f"with {report['opened']} sockets ({per:.1f} KiB per connection) -> "
                f"{report['samples'][-1][1] / 1024:.0f} MiB at the end"
            )
            if args.soak:
                lines, last_slope = rss_trend(report["samples"], report["details"], warmup)
                for index, line in enumerate(lines):
                    print(("RSS trend          " if index == 0 else " " * 19) + line)
                if args.max_slope is not None and last_slope > args.max_slope:
                    print(
                        f"RSS still growing  last-half slope {last_slope:+.2f} MiB/min > --max-slope {args.max_slope}"
                    )
                    too_steep = True
                if args.csv:
                    with open(args.csv, "w") as out:
                        out.write("seconds,rss_kib,anon_kib,file_kib,threads,fds,answers\n")
                        for (t, rss), d in zip(report["samples"], report["details"], strict=True):
                            out.write(
                                f"{t:.1f},{rss},{d['anon']},{d['file']},{d['threads']},{d['fds']},{d['answers']}\n"
                            )
        else:
            print("server RSS         not measured (--url: the server is not this script's child)")
        wrong, mismatched = lost_check(stats)
        print(
            f"errors             {len(stats.errors)}" + (f"  {sorted(set(stats.errors))[:6]}" if stats.errors else "")
        )
        print(
            f"lost messages      sent {stats.sent}, terminal frames != 1: {wrong}, stray frames: {stats.unexpected}, "
            f"stored text != streamed: {mismatched}/{len(stats.shown)}"
        )
        return 1 if (stats.errors or wrong or mismatched or stats.unexpected or too_steep) else 0
    finally:
        ws_bench.stop_processes(processes)
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
