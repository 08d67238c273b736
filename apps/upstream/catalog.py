"""What the emulator knows about models: which ids exist and their per-model limits.

The ids mirror the `anthropic.types.Model` literal of the installed SDK (2.13) so that anything the SDK
advertises is accepted; anything else gets the real API's 404 `model: <id>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

KNOWN_MODELS: frozenset[str] = frozenset(
    {
        "claude-fable-5-2",
        "claude-mythos-5-2",
        "claude-haiku-5-5",
        "claude-sonnet-5-5",
        "claude-fable-5-1",
        "claude-opus-5-5",
        "claude-mythos-5-1",
        "claude-sonnet-5",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-mythos-preview",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
    }
)

DEFAULT_CONTEXT_WINDOW = 200_000
DEFAULT_MIN_CACHEABLE_TOKENS = 1_024
DEFAULT_MAX_OUTPUT_TOKENS = 64_000

# Minimum prefix length (in tokens) below which a cache_control breakpoint is silently ignored.
MIN_CACHEABLE_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        "claude-opus-5": 512,
        "claude-sonnet-4-5": 1_024,
        "claude-sonnet-4-5-20250929": 1_024,
        "claude-sonnet-4-6": 1_024,
        "claude-sonnet-5": 1_024,
        "claude-opus-4-8": 1_024,
        "claude-opus-4-7": 2_048,
        "claude-haiku-4-5": 4_096,
        "claude-haiku-4-5-20251001": 4_096,
        "claude-opus-4-5": 4_096,
        "claude-opus-4-5-20251101": 4_096,
        "claude-opus-4-6": 4_096,
    }
)

# Largest accepted `max_tokens`. Approximate: the emulator only needs a ceiling that rejects absurd
# values the way the real API does.
MAX_OUTPUT_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        "claude-opus-4-6": 128_000,
        "claude-opus-4-7": 128_000,
        "claude-opus-4-8": 128_000,
        "claude-opus-5": 128_000,
    }
)


def min_cacheable_tokens(model: str, overrides: Mapping[str, int] | None = None) -> int:
    if overrides and model in overrides:
        return overrides[model]
    return MIN_CACHEABLE_TOKENS.get(model, DEFAULT_MIN_CACHEABLE_TOKENS)


def max_output_tokens(model: str) -> int:
    return MAX_OUTPUT_TOKENS.get(model, DEFAULT_MAX_OUTPUT_TOKENS)
