"""Static configuration of one emulator instance (faults are live state; see faults.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .catalog import DEFAULT_CONTEXT_WINDOW, KNOWN_MODELS, min_cacheable_tokens
from .clock import Clock, SystemClock
from .faults import FaultConfig

MESSAGES_MAX_REQUEST_BYTES = 32 * 1024 * 1024
BATCH_MAX_REQUEST_BYTES = 256 * 1024 * 1024
BATCH_MAX_REQUESTS = 100_000


# Idle keep-alive of the emulator's HTTP connections: longer than clients keep idle connections
# (httpx: 5 s). Uvicorn's default is also 5 s, so a pooled connection could be reused the instant the
# server closed it: a spurious "server disconnected" error (and a retry with backoff) on a healthy
# upstream, seen under load (bench/load_soak.py).
KEEP_ALIVE_SECONDS = 30


@dataclass
class EmulatorConfig:
    api_key: str | None = None  # None: any non-empty key is accepted
    control_token: str | None = None  # None: /_control/* is open to loopback clients only
    models: frozenset[str] = KNOWN_MODELS
    context_windows: Mapping[str, int] = field(default_factory=dict)  # per-model override
    default_context_window: int = DEFAULT_CONTEXT_WINDOW
    min_cacheable_tokens: Mapping[str, int] = field(default_factory=dict)  # per-model override
    faults: FaultConfig | None = None  # None: read UPSTREAM_FAULTS from the environment
    batch_processing_seconds: float = 2.0  # how long a whole batch takes, spread over its requests
    batch_cancel_seconds: float = 0.5  # how long a batch stays "canceling"
    max_batch_requests: int = BATCH_MAX_REQUESTS
    max_request_bytes: int = MESSAGES_MAX_REQUEST_BYTES
    max_batch_request_bytes: int = BATCH_MAX_REQUEST_BYTES
    request_log_size: int = 500
    logged_body_max_bytes: int = 1024 * 1024  # larger bodies are logged as a size-only stub
    public_base_url: str | None = None  # for results_url; None: derived from each request's Host
    clock: Clock = field(default_factory=SystemClock)

    def context_window(self, model: str) -> int:
        return self.context_windows.get(model, self.default_context_window)

    def min_cacheable(self, model: str) -> int:
        return min_cacheable_tokens(model, self.min_cacheable_tokens)
