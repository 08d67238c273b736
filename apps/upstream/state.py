"""Mutable state of one running emulator: cache, faults, batches, the request log and counters."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict, deque
from typing import Any

from .batches import BatchStore
from .cache import PromptCache
from .config import EmulatorConfig
from .errors import UpstreamError
from .faults import FaultConfig, FaultInjector
from .generation import generate
from .validation import ensure_known_model, validate_create_body

# Header values never kept in the request log (their names are, so tests can see which auth was used).
SECRET_HEADERS: frozenset[str] = frozenset(
    {"authorization", "x-api-key", "x-control-token", "cookie", "proxy-authorization"}
)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    redacted: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() not in SECRET_HEADERS:
            redacted[name] = value
        elif name.lower() == "authorization" and " " in value:
            redacted[name] = value.split(" ", 1)[0] + " [redacted]"
        else:
            redacted[name] = "[redacted]"
    return redacted


def _with_parsed_body(entry: dict[str, Any]) -> dict[str, Any]:
    """Bodies are logged as the raw bytes and parsed only when someone reads the log: parsing a 60 KB
    prompt a second time on every request would cost more than answering it."""
    body = entry.get("body")
    if not isinstance(body, bytes):
        return entry
    try:
        parsed: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = body[:4096].decode("utf-8", "replace")
    return {**entry, "body": parsed}


class RequestLog:
    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last `limit` entries, oldest first, with bodies parsed."""
        with self._lock:
            entries = list(self._entries)
        return [_with_parsed_body(entry) for entry in entries[-limit:]] if limit > 0 else []

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Stats:
    """Counts per model/status/endpoint and token totals per model, for benchmarks and assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.total = 0
        self.by_status: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.by_model: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.tokens_by_model: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def record(self, endpoint: str, status: int, model: str | None, usage: dict[str, Any] | None) -> None:
        with self._lock:
            self.total += 1
            self.by_status[str(status)] += 1
            self.by_endpoint[endpoint] += 1
            if model:
                self.by_model[model][str(status)] += 1
            if model and usage:
                for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                    self.tokens_by_model[model][key] += int(usage.get(key) or 0)

    def record_batch_item(self, model: str, usage: dict[str, Any]) -> None:
        """Batch requests are not HTTP requests: count them per endpoint and in token totals only."""
        with self._lock:
            self.by_endpoint["batch_item"] += 1
            for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                self.tokens_by_model[model][key] += int(usage.get(key) or 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "by_status": dict(self.by_status),
                "by_endpoint": dict(self.by_endpoint),
                "by_model": {model: dict(counts) for model, counts in self.by_model.items()},
                "tokens_by_model": {model: dict(counts) for model, counts in self.tokens_by_model.items()},
            }


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = FaultInjector(config.faults if config.faults is not None else FaultConfig.from_env())
        self.cache = PromptCache(config.clock)
        self.batches = BatchStore(config.clock, self.run_batch_item, config.batch_cancel_seconds)
        self.request_log = RequestLog(config.request_log_size)
        self.stats = Stats()

    def reset(self) -> None:
        """Back to a fresh instance: no cache entries, batches, log, counters or faults."""
        self.cache.clear()
        self.batches.clear()
        self.request_log.clear()
        self.stats.clear()
        self.faults.replace(FaultConfig())

    def batch_processing_seconds(self) -> float:
        override = self.faults.config.batch_processing_seconds
        return self.config.batch_processing_seconds if override is None else override

    def run_batch_item(self, params: dict[str, Any], api_version: str) -> dict[str, Any]:
        """One batch request, exactly as `POST /v1/messages` would run it; errors become `errored`."""
        try:
            validate_create_body(params, api_version)
            ensure_known_model(params["model"], self.config.models)
            generation = generate(
                params,
                config=self.config,
                cache=self.cache,
                service_tier="batch",
                prose_instead_of_json=self.faults.take_batch_malformed(),
            )
        except UpstreamError as error:
            return {
                "type": "errored",
                "error": {"type": "error", "error": {"type": error.error_type, "message": error.message}},
            }
        message = generation.message()
        self.stats.record_batch_item(generation.model, message["usage"])
        return {"type": "succeeded", "message": message}
