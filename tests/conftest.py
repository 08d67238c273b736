"""Project-wide fixtures: the offline upstream (real HTTP, real SDK), users, and service gates."""

import os
from collections.abc import Iterator

import httpx
import pytest
from django.core.cache import cache

from apps.upstream.testing import RunningUpstream, start_upstream_in_thread


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """The cache outlives a test's rollback: cached rows (account contexts) must not reach the next test,
    whose users may reuse the same ids."""
    cache.clear()
    from apps.chat.availability import availability_line_forget

    availability_line_forget()  # who is online differs from test to test


@pytest.fixture(scope="session")
def upstream() -> Iterator[RunningUpstream]:
    """One emulator for the whole run, on a free loopback port."""
    running = start_upstream_in_thread()
    yield running
    running.stop()


@pytest.fixture
def llm_upstream(upstream: RunningUpstream, settings) -> Iterator[RunningUpstream]:
    """Point the gateway at a clean emulator: no faults, empty cache and request log."""
    httpx.post(f"{upstream.base_url}/_control/reset", timeout=5).raise_for_status()
    cache.clear()  # circuit breakers and rate limits must not leak from one test into the next
    settings.USE_OFFLINE_UPSTREAM = True
    settings.OFFLINE_UPSTREAM_URL = upstream.base_url
    from apps.llm import clients

    clients.reset_clients()
    yield upstream
    httpx.post(f"{upstream.base_url}/_control/reset", timeout=5).raise_for_status()
    clients.reset_clients()


def set_faults(upstream: RunningUpstream, faults: dict) -> None:
    """Replace the emulator's fault configuration (see docs/upstream.md)."""
    httpx.put(f"{upstream.base_url}/_control/faults", json=faults, timeout=5).raise_for_status()


def received_requests(upstream: RunningUpstream, limit: int = 50) -> list[dict]:
    """The last request bodies the emulator received (secrets stripped)."""
    response = httpx.get(f"{upstream.base_url}/_control/requests", params={"limit": limit}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set; this test needs a real Redis")
    return url


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> Iterator[None]:
    """pytest-django's test database, ended cleanly on PostgreSQL.

    Server processes and the async consumers' worker threads may still hold connections to the test
    database when the run ends; PostgreSQL then refuses to drop it ("being accessed by other users")
    and the next run starts by deleting a stale copy. Those sessions are ended first.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def one_rate_limit_window(monkeypatch) -> None:
    """Every count of the test falls in one rate-limit window. The limiter's windows are fixed minutes: a
    test that counts to a limit could otherwise cross into the next minute between two counts, and see
    a request it expects refused go through (real windows: tests/widget/test_limits_redis.py)."""
    from apps.core import ratelimit

    monkeypatch.setattr(ratelimit, "_window_key", lambda key, window_seconds: f"ratelimit:{key}:{window_seconds}:test")
