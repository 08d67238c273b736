"""One emulator per test session (on a manual clock, batches finish instantly); reset before each test."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from apps.upstream.clock import ManualClock
from apps.upstream.config import EmulatorConfig
from apps.upstream.testing import RunningUpstream, start_upstream_in_thread
from apps.upstream.tokens import count_text_tokens

SONNET = "claude-sonnet-4-6"  # minimum cacheable prefix 1,024 tokens
HAIKU = "claude-haiku-4-5"  # minimum cacheable prefix 4,096 tokens
OPUS = "claude-opus-4-6"


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock(start=time.time())


@pytest.fixture(scope="session")
def upstream_server(clock: ManualClock) -> Iterator[RunningUpstream]:
    running = start_upstream_in_thread(EmulatorConfig(clock=clock, batch_processing_seconds=0.0))
    yield running
    running.stop()


@pytest.fixture
def upstream(upstream_server: RunningUpstream) -> RunningUpstream:
    upstream_server.control.reset()
    return upstream_server


@pytest.fixture
def client(upstream: RunningUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.base_url, api_key="test", max_retries=0) as sdk_client:
        yield sdk_client


@pytest.fixture
def raw(upstream: RunningUpstream) -> Iterator[httpx.Client]:
    """Plain httpx with SDK 0.x/1.x-style headers: x-api-key and anthropic-version 2023-06-01."""
    headers = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=upstream.base_url, headers=headers, timeout=10.0) as http:
        yield http


def long_text(min_tokens: int, topic: str = "billing") -> str:
    """Deterministic filler prose of at least `min_tokens` tokens (by the emulator's approximation)."""
    sentence = f"Our {topic} team answers every question within one day. "
    repeats = min_tokens // count_text_tokens(sentence) + 1
    return sentence * repeats
