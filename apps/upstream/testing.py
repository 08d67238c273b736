"""Run the emulator in a background thread (for pytest fixtures and benchmarks).

upstream = start_upstream_in_thread(EmulatorConfig(batch_processing_seconds=0))
client = anthropic.Anthropic(base_url=upstream.base_url, api_key="test")
upstream.control.set_faults({"force_errors": [529]})
...
upstream.stop()
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Self

import httpx
import uvicorn

from .app import create_app
from .config import KEEP_ALIVE_SECONDS, EmulatorConfig
from .faults import FaultConfig
from .state import EmulatorState

STARTUP_TIMEOUT_SECONDS = 10.0


class ControlClient:
    """Thin httpx wrapper around `/_control/*`."""

    def __init__(self, base_url: str, control_token: str | None = None) -> None:
        headers = {"x-control-token": control_token} if control_token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=10.0)

    def set_faults(self, faults: FaultConfig | dict[str, Any]) -> dict[str, Any]:
        payload = faults.to_dict() if isinstance(faults, FaultConfig) else faults
        return self._checked(self._http.put("/_control/faults", json=payload))

    def get_faults(self) -> dict[str, Any]:
        return self._checked(self._http.get("/_control/faults"))

    def clear_faults(self) -> dict[str, Any]:
        return self.set_faults({})

    def reset(self) -> None:
        self._checked(self._http.post("/_control/reset"))

    def requests(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last `limit` logged `/v1` requests, oldest first (auth header values redacted)."""
        return self._checked(self._http.get("/_control/requests", params={"limit": limit}))["data"]

    def last_request(self) -> dict[str, Any]:
        entries = self.requests(limit=1)
        if not entries:
            raise LookupError("the emulator has not received any /v1 request")
        return entries[-1]

    def stats(self) -> dict[str, Any]:
        return self._checked(self._http.get("/_control/stats"))

    def close(self) -> None:
        self._http.close()

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()


@dataclass
class RunningUpstream:
    base_url: str  # e.g. http://127.0.0.1:54321 — what ANTHROPIC_BASE_URL should be (no /v1)
    config: EmulatorConfig
    state: EmulatorState  # in-process access: cache, batches, request log
    control: ControlClient
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
        self.control.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_upstream_in_thread(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningUpstream:
    """Start uvicorn in a daemon thread with its own event loop; return once it accepts connections."""
    config = config or EmulatorConfig()
    app = create_app(config)
    # Bind first, so that port=0 gives us the real port before the server starts.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS
        )
    )
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name=f"upstream-emulator-{bound_port}", daemon=True
    )
    thread.start()
    _wait_until_started(server, thread)
    url_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{url_host}:{bound_port}"
    return RunningUpstream(
        base_url=base_url,
        config=config,
        state=app.state.emulator,
        control=ControlClient(base_url, config.control_token),
        _server=server,
        _thread=thread,
    )


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the upstream emulator thread exited during startup")
        if time.monotonic() > deadline:
            raise TimeoutError("the upstream emulator did not start in time")
        time.sleep(0.01)
