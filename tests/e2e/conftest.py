"""A live ASGI server (uvicorn in a thread, the real `supportbot.asgi.application`) for browser tests."""

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def asgi_server(transactional_db) -> Iterator[str]:
    """The project's ASGI app on a free loopback port; yields its base URL.

    The test's database is the one the server thread uses (committed data: transactional tests only).
    """
    import uvicorn

    from supportbot.asgi import application

    port = _free_port()
    # Per-message deflate off, as in production: it costs CPU and memory on every token frame.
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, ws_per_message_deflate=False, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser_page(asgi_server):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()  # a context of its own: tests may open a second tab in it
        context.set_default_timeout(15_000)
        page = context.new_page()
        yield page
        browser.close()


def off_loop(function, *args, **kwargs):
    """Run ORM code from a test driving the sync Playwright API (which runs an event loop in this thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def call():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()
