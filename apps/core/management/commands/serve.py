"""Run the ASGI server (uvicorn) — and, with no Anthropic credentials configured, the offline upstream.

Uvicorn runs with permessage-deflate off: answers are streamed as many tiny frames, where compression
costs ~250 KiB more memory per socket and a measurable share of CPU for almost no saving (see README).

`--workers N` (or WEB_CONCURRENCY) runs N server processes on one listening socket, so a machine's
cores share the work (one process has one GIL: a burst of questions queues on one core otherwise).
They share state through PostgreSQL and Redis, so more than one needs REDIS_URL (docs/operations.md).
"""

import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core.periodic import EmbeddedScheduler, embedded_intervals

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """Uvicorn that, on SIGTERM, stops accepting, lets streaming answers finish, then shuts down.

    Answers still running after `SHUTDOWN_GRACE_SECONDS` are cancelled and stored as incomplete.
    """

    def __init__(self, config: uvicorn.Config, *, on_stopped: Callable[[], None] = lambda: None) -> None:
        super().__init__(config)
        # Runs before uvicorn re-raises the signal it caught (which ends the process at once).
        self.on_stopped = on_stopped

    async def shutdown(self, sockets=None) -> None:
        from apps.chat.answering import running_answers_drain

        for server in self.servers:
            server.close()  # no new connections while draining
        still_running = await running_answers_drain(timeout=settings.SHUTDOWN_GRACE_SECONDS)
        if still_running:
            logger.warning("shutdown: %d answers still streaming are stored as incomplete", still_running)
        self._forget_closing_websockets()
        await super().shutdown(sockets)
        self.on_stopped()

    def _forget_closing_websockets(self) -> None:
        """Leave websockets the client is already closing to finish on their own.

        uvicorn's shutdown sends every connection a close frame; one whose closing handshake has begun
        (a customer's page closing just after its answer) makes websockets raise InvalidState, which
        aborts the whole shutdown and exits with status 1.
        """
        from websockets.protocol import State

        for connection in list(self.server_state.connections):
            protocol = getattr(connection, "conn", None)
            if getattr(protocol, "state", None) in (State.CLOSING, State.CLOSED):
                self.server_state.connections.discard(connection)


def server_config(*, host: str, port: int) -> uvicorn.Config:
    """How `serve` runs uvicorn (one place, so tests serve the application the same way)."""
    return uvicorn.Config(
        "supportbot.asgi:application",
        host=host,
        port=port,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level=settings.LOG_LEVEL.lower(),  # access lines are INFO
        # Uvicorn's loggers propagate to the project's handler (LOG_FORMAT, request ids) instead of
        # getting uvicorn's own plain-text handlers.
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=settings.SHUTDOWN_GRACE_SECONDS,
    )


def _worker_main(config: uvicorn.Config, listener: socket.socket) -> None:
    """A server process: its own event loop and GIL, serving connections from the shared socket."""
    # Its own process group: a Ctrl+C in the terminal reaches the supervisor only, which stops the
    # workers once, with SIGTERM (a second signal would make uvicorn skip the drain).
    os.setpgrp()
    config.configure_logging()
    DrainingServer(config).run(sockets=[listener])


# A worker that exits sooner than this after starting failed to start, rather than crashed later.
MIN_WORKER_LIFETIME_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class WorkerSupervisor:
    """Runs `count` draining server processes on one listening socket and keeps them running.

    SIGTERM or SIGINT stops them with SIGTERM (each drains its streaming answers) and waits for them.
    """

    def __init__(self, config: uvicorn.Config, count: int) -> None:
        self.config = config
        self.count = count
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")

    def run(self) -> None:
        listener = self.config.bind_socket()
        previous = {signum: signal.signal(signum, lambda *_: self._stopping.set()) for signum in STOP_SIGNALS}
        workers = [self._start(listener) for _ in range(self.count)]
        logger.info("serving with %d worker processes: %s", self.count, [w.pid for w, _ in workers])
        try:
            while not self._stopping.wait(0.5):
                for index, (worker, started) in enumerate(workers):
                    if worker.is_alive():
                        continue
                    if time.monotonic() - started < MIN_WORKER_LIFETIME_SECONDS:
                        # It could not start (settings, the app, the port): restarting would loop.
                        raise CommandError(f"A server process exited during start-up (exit code {worker.exitcode}).")
                    logger.error("worker %s exited (%s); starting another", worker.pid, worker.exitcode)
                    workers[index] = self._start(listener)
        finally:
            self._stop([worker for worker, _ in workers])
            listener.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _start(self, listener: socket.socket) -> tuple[multiprocessing.process.BaseProcess, float]:
        worker = self._context.Process(target=_worker_main, args=(self.config, listener), daemon=False)
        worker.start()
        return worker, time.monotonic()

    def _stop(self, workers: list[multiprocessing.process.BaseProcess]) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: drain, then exit
        deadline = time.monotonic() + settings.SHUTDOWN_GRACE_SECONDS + 10
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                logger.error("worker %s did not stop in time; killing it", worker.pid)
                worker.kill()
                worker.join()


class Command(BaseCommand):
    help = "Serve supportbot over HTTP and websockets; starts the offline upstream when no API key is set."

    def check(self, *args, **kwargs) -> None:
        # Start-up checks read the database too (routing rules naming a deprecated model, published
        # prompts naming a customer): a server is the moment an operator reads them.
        kwargs.setdefault("databases", ["default"])
        super().check(*args, **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.WEB_CONCURRENCY,
            help="server processes sharing the port (default WEB_CONCURRENCY, 1); more than one needs REDIS_URL",
        )

    def handle(self, *args, host: str, port: int, workers: int, **options) -> None:
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if workers > 1 and not settings.REDIS_URL:
            raise CommandError(
                "Several server processes need REDIS_URL: the channel layer (resuming an answer on another "
                "process, logouts), rate limits and the circuit breaker are shared through Redis."
            )
        upstream = self._start_offline_upstream() if settings.USE_OFFLINE_UPSTREAM else None
        self.stdout.write(f"supportbot on http://{host}:{port}/ (log in as alice, bob or carol / demo-password)")
        config = server_config(host=host, port=port)

        def stop_upstream() -> None:
            if upstream is not None and upstream.poll() is None:
                upstream.terminate()
                upstream.wait(timeout=10)

        # No broker: nothing else runs beat's every-minute tasks (emailing unseen agents' replies).
        periodic = EmbeddedScheduler(embedded_intervals() if settings.CELERY_TASK_ALWAYS_EAGER else {})
        periodic.start()
        try:
            if workers == 1:
                DrainingServer(config, on_stopped=stop_upstream).run()
            else:
                WorkerSupervisor(config, workers).run()
        finally:
            periodic.stop()
            stop_upstream()

    def _start_offline_upstream(self) -> subprocess.Popen | None:
        url = settings.OFFLINE_UPSTREAM_URL
        if self._is_up(url):
            self.stdout.write(f"Using the offline upstream already running at {url}")
            return None
        self.stdout.write(f"No ANTHROPIC_API_KEY: starting the offline Anthropic-compatible upstream at {url}")
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no user input
            [sys.executable, "-m", "apps.upstream", "--host", "127.0.0.1", "--port", str(settings.UPSTREAM_PORT)]
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._is_up(url):
                return process
            if process.poll() is not None:
                raise CommandError("The offline upstream exited during start-up; see its output above.")
            time.sleep(0.2)
        process.terminate()
        raise CommandError(f"The offline upstream did not answer at {url} within 20 s.")

    @staticmethod
    def _is_up(url: str) -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False
