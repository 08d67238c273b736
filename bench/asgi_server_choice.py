"""Which ASGI server streams answers better: daphne or uvicorn? Prints the figures behind the README's choice.

Both serve the same Channels application: a websocket consumer that, per client message, streams
`--deltas` small JSON frames (like answer tokens). Measured per server, in one run, on loopback:
- stream throughput: `--clients` concurrent sockets each receiving `--deltas` frames (frames/s, p99 time
  to first frame);
- memory per idle connection: RSS growth with `--idle` open sockets, divided by their number.

    .venv/bin/python bench/asgi_server_choice.py [--clients 50] [--deltas 200] [--idle 2000]
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
APP = "bench._stream_app:application"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(server: str, port: int) -> subprocess.Popen:
    if server == "uvicorn":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            APP,
            "--port",
            str(port),
            "--ws-per-message-deflate",
            "false",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ]
    else:
        cmd = [sys.executable, "-m", "daphne", "-p", str(port), "-v", "0", APP]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{server} did not start")


async def one_stream(url: str, deltas: int) -> tuple[float, int]:
    async with websockets.connect(url, compression=None, max_queue=None) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"deltas": deltas}))
        first = None
        received = 0
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "delta":
                received += 1
                first = first or time.perf_counter() - started
            elif frame["type"] == "done":
                return first or 0.0, received


async def measure_streams(url: str, clients: int, deltas: int) -> dict:
    started = time.perf_counter()
    results = await asyncio.gather(*(one_stream(url, deltas) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    firsts = sorted(r[0] for r in results)
    total = sum(r[1] for r in results)
    return {
        "frames_per_s": total / elapsed,
        "first_frame_p50_ms": statistics.median(firsts) * 1000,
        "first_frame_p99_ms": firsts[int(len(firsts) * 0.99) - 1 if len(firsts) > 1 else 0] * 1000,
        "lost_frames": clients * deltas - total,
    }


async def measure_idle(url: str, pid: int, idle: int) -> float:
    before = rss_kib(pid)
    sockets = []
    for _ in range(idle):
        sockets.append(await websockets.connect(url, compression=None))
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return (after - before) / idle


async def bench(server: str, args: argparse.Namespace) -> dict:
    port = free_port()
    process = start(server, port)
    url = f"ws://127.0.0.1:{port}/"
    try:
        await measure_streams(url, 5, 20)  # warm-up
        figures = await measure_streams(url, args.clients, args.deltas)
        figures["idle_kib_per_socket"] = await measure_idle(url, process.pid, args.idle)
        return figures
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--deltas", type=int, default=200)
    parser.add_argument("--idle", type=int, default=2000)
    args = parser.parse_args()
    print(f"{args.clients} clients x {args.deltas} deltas; {args.idle} idle sockets")
    print(f"{'server':10} {'frames/s':>10} {'1st p50 ms':>11} {'1st p99 ms':>11} {'lost':>5} {'KiB/idle socket':>16}")
    for server in ("uvicorn", "daphne"):
        f = asyncio.run(bench(server, args))
        print(
            f"{server:10} {f['frames_per_s']:10.0f} {f['first_frame_p50_ms']:11.1f} {f['first_frame_p99_ms']:11.1f} "
            f"{f['lost_frames']:5d} {f['idle_kib_per_socket']:16.1f}"
        )


if __name__ == "__main__":
    main()
