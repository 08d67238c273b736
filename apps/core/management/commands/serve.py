"""Run the ASGI server (uvicorn) — and, with no Anthropic credentials configured, the offline upstream.

Uvicorn runs with permessage-deflate off: answers are streamed as many tiny frames, where compression
costs ~250 KiB more memory per socket and a measurable share of CPU for almost no saving (see README).
"""

import logging
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

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
        from apps.chat.consumers import running_answers_drain

        for server in self.servers:
            server.close()  # no new connections while draining
        still_running = await running_answers_drain(timeout=settings.SHUTDOWN_GRACE_SECONDS)
        if still_running:
            logger.warning("shutdown: %d answers still streaming are stored as incomplete", still_running)
        await super().shutdown(sockets)
        self.on_stopped()


class Command(BaseCommand):
    help = "Serve supportbot over HTTP and websockets; starts the offline upstream when no API key is set."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args, host: str, port: int, **options) -> None:
        upstream = self._start_offline_upstream() if settings.USE_OFFLINE_UPSTREAM else None
        self.stdout.write(f"supportbot on http://{host}:{port}/ (log in as alice, bob or carol / demo-password)")
        config = uvicorn.Config(
            "supportbot.asgi:application",
            host=host,
            port=port,
            ws_per_message_deflate=False,
            lifespan="off",
            proxy_headers=True,
            timeout_graceful_shutdown=settings.SHUTDOWN_GRACE_SECONDS,
        )

        def stop_upstream() -> None:
            if upstream is not None and upstream.poll() is None:
                upstream.terminate()
                upstream.wait(timeout=10)

        try:
            DrainingServer(config, on_stopped=stop_upstream).run()
        finally:
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
