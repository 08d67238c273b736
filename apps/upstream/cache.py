"""Prompt-cache accounting that behaves like the real service.

Rules (see docs/upstream.md):
- The prompt is the ordered blocks tools → system → messages (`prompt.prompt_blocks`). A block with
  `cache_control` is a breakpoint; the prefix up to and including it can be cached once it reaches the
  model's minimum cacheable length. Shorter prefixes run uncached, without error.
- The key is a hash of the model and the digest of every block's canonical JSON in the prefix, so changing any
  earlier block (a tool, the system prompt, an older message) misses.
- Reads: the longest live prefix wins. From each breakpoint the service also looks back up to 20 block
  boundaries for an entry written by an earlier request, which is what makes a breakpoint that moves
  forward with the conversation hit the previous turn's entry.
- Writes: everything after the read prefix, up to the last breakpoint, is written; each segment is
  billed at the TTL of the breakpoint that ends it. A hit refreshes the entry's TTL for free.
- `input_tokens` is what is neither read nor written, i.e. what follows the last cached breakpoint.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import invalid_request
from .prompt import PromptBlock

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20
TTL_SECONDS: dict[str, float] = {"5m": 300.0, "1h": 3_600.0}
DEFAULT_TTL = "5m"


@dataclass(frozen=True)
class CacheUsage:
    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def as_usage(self) -> dict[str, Any]:
        """The input side of a `usage` object."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
        }


@dataclass
class _Entry:
    expires_at: float
    ttl_seconds: float


def breakpoint_ttl(cache_control: dict[str, Any]) -> str:
    return cache_control.get("ttl") or DEFAULT_TTL


def validate_breakpoints(breakpoints: list[Any]) -> None:
    """Reject what the real API rejects: bad cache_control, more than 4 breakpoints, 1h after 5m.

    `breakpoints` are the `cache_control` values in prompt order (`prompt.cache_controls`)."""
    for cache_control in breakpoints:
        if not isinstance(cache_control, dict) or cache_control.get("type") != "ephemeral":
            raise invalid_request("cache_control.type: Input should be 'ephemeral'")
        if breakpoint_ttl(cache_control) not in TTL_SECONDS:
            raise invalid_request("cache_control.ttl: Input should be '5m' or '1h'")
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise invalid_request(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(breakpoints)}."
        )
    seen_short_ttl = False
    for cache_control in breakpoints:
        ttl = breakpoint_ttl(cache_control)
        if ttl == "1h" and seen_short_ttl:
            raise invalid_request(
                "A cache_control block with ttl='1h' must not come after a cache_control block with ttl='5m'."
            )
        seen_short_ttl = seen_short_ttl or ttl == "5m"


def _prefix_digests(model: str, blocks: list[PromptBlock]) -> list[str]:
    """digests[i] identifies the prefix blocks[0..i] for `model`: O(blocks), each block adds its digest."""
    running = hashlib.sha256(model.encode())
    digests: list[str] = []
    for block in blocks:
        running.update(block.identity)  # fixed-length digests: no ambiguity between prefixes
        digests.append(running.hexdigest())
    return digests


def _cumulative_tokens(blocks: list[PromptBlock]) -> list[int]:
    totals: list[int] = []
    running = 0
    for block in blocks:
        running += block.tokens
        totals.append(running)
    return totals


class PromptCache:
    def __init__(self, clock: Clock, max_entries: int = 200_000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def account(self, model: str, blocks: list[PromptBlock], min_cacheable_tokens: int) -> CacheUsage:
        """Look up and write the request's prefixes; return the input side of its usage."""
        cumulative = _cumulative_tokens(blocks)
        total = cumulative[-1] if cumulative else 0
        cacheable = [
            index
            for index, block in enumerate(blocks)
            if block.cache_control is not None and cumulative[index] >= min_cacheable_tokens
        ]
        if not cacheable:
            return CacheUsage(input_tokens=total)

        digests = _prefix_digests(model, blocks)
        with self._lock:
            now = self._clock.time()
            read_position = self._longest_live_prefix(cacheable, digests, now)
            read_tokens = cumulative[read_position] if read_position is not None else 0
            written = self._write_after(read_position, cacheable, blocks, digests, cumulative, now)
            self._prune(now)

        creation_5m = written.get("5m", 0)
        creation_1h = written.get("1h", 0)
        creation = creation_5m + creation_1h
        return CacheUsage(
            input_tokens=total - read_tokens - creation,
            cache_creation_input_tokens=creation,
            cache_read_input_tokens=read_tokens,
            ephemeral_5m_input_tokens=creation_5m,
            ephemeral_1h_input_tokens=creation_1h,
        )

    def _longest_live_prefix(self, breakpoints: list[int], digests: list[str], now: float) -> int | None:
        best: int | None = None
        for breakpoint_index in breakpoints:
            for position in range(breakpoint_index, max(-1, breakpoint_index - LOOKBACK_BLOCKS), -1):
                entry = self._entries.get(digests[position])
                if entry is not None and entry.expires_at > now:
                    best = position if best is None else max(best, position)
                    break  # the nearest hit looking back from this breakpoint is its longest
        if best is not None:
            hit = self._entries[digests[best]]
            hit.expires_at = now + hit.ttl_seconds  # a hit refreshes the TTL at no cost
        return best

    def _write_after(
        self,
        read_position: int | None,
        breakpoints: list[int],
        blocks: list[PromptBlock],
        digests: list[str],
        cumulative: list[int],
        now: float,
    ) -> dict[str, int]:
        written_by_ttl: dict[str, int] = {}
        segment_start_tokens = cumulative[read_position] if read_position is not None else 0
        for breakpoint_index in breakpoints:
            if read_position is not None and breakpoint_index <= read_position:
                continue
            cache_control = blocks[breakpoint_index].cache_control or {}
            ttl = breakpoint_ttl(cache_control)
            ttl_seconds = TTL_SECONDS[ttl]
            self._entries[digests[breakpoint_index]] = _Entry(expires_at=now + ttl_seconds, ttl_seconds=ttl_seconds)
            segment_tokens = cumulative[breakpoint_index] - segment_start_tokens
            written_by_ttl[ttl] = written_by_ttl.get(ttl, 0) + segment_tokens
            segment_start_tokens = cumulative[breakpoint_index]
        return written_by_ttl

    def _prune(self, now: float) -> None:
        if len(self._entries) <= self._max_entries:
            return
        for key in [key for key, entry in self._entries.items() if entry.expires_at <= now]:
            del self._entries[key]
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]  # oldest insertion first
