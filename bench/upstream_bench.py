"""Throughput of the offline emulator with the real support prompt (~16k tokens of system text).

Starts `python -m apps.upstream` in a subprocess, then streams short answers (max_tokens 64) at each
concurrency level over raw HTTP/1.1 and prints requests/s, time to first token (first text delta, from
opening the connection) and the emulator's CPU time per request.
Django-free: the system prompt is the seeded `support-assistant` demo content, assembled the way
`apps/llm/prompting.py` does it (documents and examples carry the cache breakpoints).

    .venv/bin/python bench/upstream_bench.py                       # concurrency 1, 50, 200, 500
    .venv/bin/python bench/upstream_bench.py --levels 500 --token-ms 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from html import escape
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.accounts import demo_content  # noqa: E402  (Django-free module)

MODEL = "claude-sonnet-4-6"
QUESTIONS = (
    "How do I reset my password?",
    "Why is my last invoice still open?",
    "What are the API rate limits on the Pro plan?",
    "How do I export all my workspace data?",
    "Comment réinitialiser mon mot de passe ?",
    "My desktop app shows E-1042, did I lose my changes?",
    "Can I get a refund for last month?",
    "How long does shipping of the Acme Hub take?",
)
ACCOUNT_CONTEXT = (
    "<account_context>\ncustomer: bench\nplan: pro\nbilling_status: active\nlanguage: en\ncompany: -\nseats: 3\n"
    "recent_invoices:\n- INV-2026-01766: 145.00 USD, open, issued 2026-11-15, due 2026-11-29\n"
    "open_tickets:\n- none\n</account_context>"
)


def system_blocks() -> list[dict[str, object]]:
    load = demo_content.load_text
    documents = "\n".join(
        f'<document title="{escape(title, quote=True)}">\n{body.strip()}\n</document>'
        for title, body in demo_content.knowledge_base_documents()
    )
    ephemeral = {"type": "ephemeral"}
    return [
        {"type": "text", "text": load("persona")},
        {"type": "text", "text": f"<business_rules>\n{load('business_rules')}\n</business_rules>"},
        {"type": "text", "text": f"<output_format>\n{load('output_format')}\n</output_format>"},
        {"type": "text", "text": f"<documents>\n{documents}\n</documents>", "cache_control": ephemeral},
        {"type": "text", "text": f"<examples>\n{load('few_shot')}\n</examples>", "cache_control": ephemeral},
    ]


def request_body(system: list[dict[str, object]], index: int, max_tokens: int) -> bytes:
    question = QUESTIONS[index % len(QUESTIONS)]
    user = f"{ACCOUNT_CONTEXT}\n\n<user_message>\n{question} (#{index})\n</user_message>"
    body = {
        "model": MODEL,
        "max_tokens": max_tokens,
        "stream": True,
        "system": system,
        "messages": [{"role": "user", "content": [{"type": "text", "text": user}]}],
    }
    return json.dumps(body).encode()


async def one_request(port: int, payload: bytes) -> tuple[float, float]:
    """(time to first text delta, total time) in seconds.

    A raw HTTP/1.1 request on its own connection, read until the server closes it: an httpx or SDK
    client parsing every SSE line of hundreds of streams costs more CPU than the emulator, and on a
    2-core machine would measure the client instead.
    """
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: bench\r\nanthropic-version: 2023-06-01\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    first: float | None = None
    tail = b""
    while chunk := await reader.read(65_536):
        if first is None and _FIRST_DELTA in tail + chunk:
            first = time.perf_counter() - started
        tail = chunk[-64:]
    writer.close()
    total = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the stream had no text delta")
    return first, total


_FIRST_DELTA = b"event: content_block_delta"


async def run_level(port: int, system: list[dict[str, object]], concurrency: int, requests: int, max_tokens: int):
    payloads = [request_body(system, index, max_tokens) for index in range(requests)]
    await one_request(port, payloads[0])  # warm the prompt cache and the emulator's per-prompt caches
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    results: list[tuple[float, float]] = []
    errors: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            try:
                results.append(await one_request(port, queue.get_nowait()))
            except (OSError, RuntimeError) as error:
                errors.append(type(error).__name__)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ttfts = sorted(first for first, _ in results)
    return {
        "errors": len(errors),
        "requests_per_second": len(results) / elapsed,
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "ttft_p99_ms": 1000 * ttfts[min(len(ttfts) - 1, int(len(ttfts) * 0.99))],
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), to tell the emulator's cost from the client's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "apps.upstream", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the emulator did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 50, 200, 500])
    parser.add_argument("--requests-per-level", type=int, default=0, help="default: max(40, 2 × concurrency)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--token-ms", type=float, default=0.0, help="emulated pace between text deltas")
    arguments = parser.parse_args()

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_emulator(port)
    try:
        httpx.put(f"{base_url}/_control/faults", json={"token_ms": arguments.token_ms}).raise_for_status()
        system = system_blocks()
        system_chars = sum(len(str(block["text"])) for block in system)
        print(f"system prompt: {system_chars:,} chars; max_tokens {arguments.max_tokens}; ", end="")
        print(f"token_ms {arguments.token_ms}; {os.cpu_count()} CPUs shared by client and emulator")
        header = f"{'concurrency':>11} {'requests':>8} {'req/s':>8} {'ttft p50 ms':>12} {'ttft p99 ms':>12}"
        print(f"{header} {'emulator CPU ms/req':>20} {'errors':>6}")
        for concurrency in arguments.levels:
            requests = arguments.requests_per_level or max(40, 2 * concurrency)
            cpu_before = cpu_seconds(process.pid)
            figures = asyncio.run(run_level(port, system, concurrency, requests, arguments.max_tokens))
            server_ms = 1000 * (cpu_seconds(process.pid) - cpu_before) / (requests + 1)
            print(
                f"{concurrency:>11} {requests:>8} {figures['requests_per_second']:>8.1f} "
                f"{figures['ttft_p50_ms']:>12.1f} {figures['ttft_p99_ms']:>12.1f} {server_ms:>20.2f} "
                f"{figures['errors']:>6}"
            )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
