"""Message Batches: an in-memory store whose batches advance with the (injectable) clock.

Processing is lazy: nothing runs in the background. Whenever a batch is read, the requests whose turn
has come (request i of n is due `processing_seconds * (i + 1) / n` after creation) are run through the
same generator as `POST /v1/messages` and their JSONL result line is stored. The request params are
kept as compact JSON bytes and dropped once processed, so 10,000 requests of ~2 KB stay cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock, rfc3339
from .errors import UpstreamError, invalid_request, new_id

CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BATCH_LIFETIME_SECONDS = 24 * 3600
RESULT_TYPES: tuple[str, ...] = ("succeeded", "errored", "canceled", "expired")
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1_000

# Runs one request's params (validated, generated) and returns its `result` object.
ItemRunner = Callable[[dict[str, Any], str], dict[str, Any]]


@dataclass
class Batch:
    id: str
    sequence: int  # creation order, for listing when the clock does not move between creations
    created_at: float
    processing_seconds: float
    api_version: str
    error_rate: float
    expire_rate: float
    custom_ids: list[str]
    pending_params: list[bytes | None]
    result_lines: list[bytes | None]
    processed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    cancel_initiated_at: float | None = None
    cancel_effective_at: float | None = None
    ended_at: float | None = None

    @property
    def size(self) -> int:
        return len(self.custom_ids)

    @property
    def processing_status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def due_count(self, moment: float) -> int:
        """How many requests have finished by `moment` (they finish one after another, evenly spaced)."""
        if self.processing_seconds <= 0:
            return self.size
        elapsed = max(moment - self.created_at, 0.0)
        return min(self.size, math.floor(elapsed / self.processing_seconds * self.size + 1e-9))

    def to_json(self, results_url: str | None) -> dict[str, Any]:
        ended = self.ended_at is not None
        counts = {name: self.outcomes.get(name, 0) if ended else 0 for name in RESULT_TYPES}
        counts["processing"] = 0 if ended else self.size
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": counts,
            "ended_at": rfc3339(self.ended_at) if self.ended_at is not None else None,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + BATCH_LIFETIME_SECONDS),
            "archived_at": None,
            "cancel_initiated_at": rfc3339(self.cancel_initiated_at) if self.cancel_initiated_at else None,
            "results_url": results_url if ended else None,
        }


def validate_batch_body(body: Any, max_requests: int) -> list[tuple[str, dict[str, Any]]]:
    """Structural checks done synchronously at creation; param semantics are checked per request later."""
    if not isinstance(body, dict):
        raise invalid_request("body: Input should be a valid dictionary")
    for key in body:
        if key != "requests":
            raise invalid_request(f"{key}: Extra inputs are not permitted")
    requests = body.get("requests")
    if not isinstance(requests, list):
        raise invalid_request("requests: Field required")
    if not requests:
        raise invalid_request("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > max_requests:
        raise invalid_request(
            f"requests: List should have at most {max_requests} items after validation, not {len(requests)}"
        )
    seen: set[str] = set()
    validated: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(requests):
        custom_id, params = _validate_batch_item(item, index)
        if custom_id in seen:
            raise invalid_request(
                f"requests.{index}.custom_id: Duplicate custom_id '{custom_id}'; "
                "custom_id must be unique within a batch"
            )
        seen.add(custom_id)
        validated.append((custom_id, params))
    return validated


def _validate_batch_item(item: Any, index: int) -> tuple[str, dict[str, Any]]:
    path = f"requests.{index}"
    if not isinstance(item, dict):
        raise invalid_request(f"{path}: Input should be a valid dictionary")
    for key in item:
        if key not in ("custom_id", "params"):
            raise invalid_request(f"{path}.{key}: Extra inputs are not permitted")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.match(custom_id):
        raise invalid_request(f"{path}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    params = item.get("params")
    if not isinstance(params, dict):
        raise invalid_request(f"{path}.params: Field required")
    # The SDK types batch params as `MessageCreateParamsNonStreaming` (`stream: Literal[False]`): an
    # explicit false is a valid request, only true is refused.
    if params.get("stream") is True:
        raise invalid_request(f"{path}.params.stream: Streaming is not supported in Message Batches")
    # Pre-warming the cache (max_tokens 0) is not supported inside a batch (batch-processing guide): an
    # entry written during batch processing would expire before a follow-up request ran.
    max_tokens = params.get("max_tokens")
    if max_tokens == 0 and not isinstance(max_tokens, bool):
        raise invalid_request(f"{path}.params.max_tokens: Input should be greater than or equal to 1")
    for required in ("model", "max_tokens", "messages"):
        if required not in params:
            raise invalid_request(f"{path}.params.{required}: Field required")
    return custom_id, params


class BatchStore:
    def __init__(self, clock: Clock, run_item: ItemRunner, cancel_seconds: float) -> None:
        self._clock = clock
        self._run_item = run_item
        self._cancel_seconds = cancel_seconds
        self._batches: dict[str, Batch] = {}
        self._sequence = 0
        self._lock = threading.RLock()

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()

    def create(
        self,
        items: list[tuple[str, dict[str, Any]]],
        *,
        api_version: str,
        processing_seconds: float,
        error_rate: float,
        expire_rate: float,
    ) -> Batch:
        with self._lock:
            self._sequence += 1
            batch = Batch(
                id=new_id("msgbatch_"),
                sequence=self._sequence,
                created_at=self._clock.time(),
                processing_seconds=processing_seconds,
                api_version=api_version,
                error_rate=error_rate,
                expire_rate=expire_rate,
                custom_ids=[custom_id for custom_id, _ in items],
                pending_params=[_compact(params) for _, params in items],
                result_lines=[None] * len(items),
            )
            self._batches[batch.id] = batch
            return batch

    def get(self, batch_id: str) -> Batch:
        """The batch, advanced to the current time. Run it off the event loop: it may process requests."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                raise UpstreamError(404, f"No batch found with id '{batch_id}'")
            self._advance(batch, self._clock.time())
            return batch

    def list_page(self, limit: int, after_id: str | None, before_id: str | None) -> dict[str, Any]:
        """Newest first, like the real API; `after_id` pages towards older batches."""
        with self._lock:
            ordered = sorted(self._batches.values(), key=lambda batch: batch.sequence, reverse=True)
            ids = [batch.id for batch in ordered]
            if after_id is not None:
                start = ids.index(after_id) + 1 if after_id in ids else len(ids)
                window, has_more = ordered[start : start + limit], start + limit < len(ordered)
            elif before_id is not None:
                end = ids.index(before_id) if before_id in ids else 0
                window, has_more = ordered[max(0, end - limit) : end], end - limit > 0
            else:
                window, has_more = ordered[:limit], limit < len(ordered)
            now = self._clock.time()
            for batch in window:
                self._advance(batch, now)
            return {"window": window, "has_more": has_more}

    def cancel(self, batch_id: str) -> Batch:
        with self._lock:
            batch = self.get(batch_id)
            if batch.processing_status == "in_progress":
                now = self._clock.time()
                batch.cancel_initiated_at = now
                batch.cancel_effective_at = now + self._cancel_seconds
                self._advance(batch, now)
            return batch

    def delete(self, batch_id: str) -> None:
        with self._lock:
            batch = self.get(batch_id)
            if batch.processing_status != "ended":
                raise invalid_request(f"Batch '{batch_id}' cannot be deleted while it is processing; cancel it first")
            del self._batches[batch_id]

    def result_lines(self, batch_id: str) -> Iterator[bytes]:
        """JSONL lines in a shuffled (but per-batch stable) order: clients must match on custom_id."""
        batch = self.get(batch_id)
        if batch.ended_at is None:
            raise invalid_request(f"Batch '{batch_id}' has not finished processing; results are not available yet")
        order = list(range(batch.size))
        random.Random(batch.id).shuffle(order)
        lines = batch.result_lines
        return (lines[index] or b"" for index in order)

    def _advance(self, batch: Batch, now: float) -> None:
        if batch.ended_at is not None:
            return
        if batch.cancel_effective_at is not None:
            self._process_until(batch, batch.due_count(batch.cancel_initiated_at or now))
            if now >= batch.cancel_effective_at:
                self._cancel_rest(batch)
                batch.ended_at = batch.cancel_effective_at
            return
        self._process_until(batch, batch.due_count(now))
        if batch.processed == batch.size:
            batch.ended_at = batch.created_at + max(batch.processing_seconds, 0.0)

    def _process_until(self, batch: Batch, target: int) -> None:
        while batch.processed < target:
            index = batch.processed
            params = batch.pending_params[index]
            batch.pending_params[index] = None  # free the request as soon as it has a result
            result = self._outcome(batch, index, params or b"{}")
            batch.result_lines[index] = _compact({"custom_id": batch.custom_ids[index], "result": result}) + b"\n"
            batch.outcomes[result["type"]] += 1
            batch.processed += 1

    def _outcome(self, batch: Batch, index: int, params: bytes) -> dict[str, Any]:
        draw = _stable_fraction(batch.id, batch.custom_ids[index])
        if draw < batch.expire_rate:
            return {"type": "expired"}
        if draw < batch.expire_rate + batch.error_rate:
            return {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}},
            }
        return self._run_item(json.loads(params), batch.api_version)

    def _cancel_rest(self, batch: Batch) -> None:
        for index in range(batch.processed, batch.size):
            batch.pending_params[index] = None
            line = {"custom_id": batch.custom_ids[index], "result": {"type": "canceled"}}
            batch.result_lines[index] = _compact(line) + b"\n"
            batch.outcomes["canceled"] += 1
        batch.processed = batch.size


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _stable_fraction(*parts: str) -> float:
    """A per-item number in [0, 1) that does not change between runs (unlike hash())."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
