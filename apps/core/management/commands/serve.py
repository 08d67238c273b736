"""Run the ASGI server (uvicorn) — and, with no Anthropic credentials configured, the offline upstream.

Uvicorn runs with permessage-deflate off: answers are streamed as many tiny frames, where compression
costs ~250 KiB more memory per socket and a measurable share of CPU for almost no saving (see README).
"""

import subprocess
import sys
import time

import httpx
import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Serve supportbot over HTTP and websockets; starts the offline upstream when no API key is set."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args, host: str, port: int, workers: int, **options) -> None:
        upstream = self._start_offline_upstream() if settings.USE_OFFLINE_UPSTREAM else None
        self.stdout.write(f"supportbot on http://{host}:{port}/ (log in as alice, bob or carol / demo-password)")
        try:
            uvicorn.run(
                "supportbot.asgi:application",
                host=host,
                port=port,
                workers=workers,
                ws_per_message_deflate=False,
                lifespan="off",
                proxy_headers=True,
                timeout_graceful_shutdown=30,
            )
        finally:
            if upstream is not None:
                upstream.terminate()
                upstream.wait(timeout=10)

    def _start_offline_upstream(self) -> subprocess.Popen:
        url = settings.OFFLINE_UPSTREAM_URL
        if self._is_up(url):
            self.stdout.write(f"Using the offline upstream already running at {url}")
            return None
        self.stdout.write(f"No ANTHROPIC_API_KEY: starting the offline Anthropic-compatible upstream at {url}")
        process = subprocess.Popen(
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
