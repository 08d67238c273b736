"""Fixtures for the gateway tests: a clean breaker state and a recorder for retry waits."""

import pytest
from django.core.cache import cache

from apps.llm.retry import RetryPolicy


@pytest.fixture(autouse=True)
def clean_breakers():
    """Circuit breakers live in the (locmem) cache: start and end every test closed."""
    cache.clear()
    yield
    cache.clear()


class RecordedWaits(list):
    """Collects the waits the gateway asked for, without waiting."""

    def sleep(self, seconds: float) -> None:
        self.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.append(seconds)

    def policy(self, **overrides) -> RetryPolicy:
        return RetryPolicy.from_settings(sleep=self.sleep, async_sleep=self.async_sleep, **overrides)


@pytest.fixture
def waits() -> RecordedWaits:
    return RecordedWaits()
