"""The backoff schedule and which failures are retried."""

import email.utils
import time

import anthropic
import httpx2
import pytest

from apps.llm.retry import RetryPolicy, is_retryable, retry_after_seconds

REQUEST = httpx2.Request("POST", "http://upstream.test/v1/messages")


def status_error(status: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    from anthropic._error_classes import make_status_error

    response = httpx2.Response(status, headers=headers or {}, request=REQUEST)
    return make_status_error(f"Error code: {status}", body=None, response=response)


def policy(**overrides) -> RetryPolicy:
    values = {"max_attempts": 4, "initial_seconds": 1.0, "max_seconds": 8.0}
    values.update(overrides)
    return RetryPolicy(**values)


def test_ceiling_doubles_from_one_second_and_is_capped():
    always_top = policy(rand=lambda: 1.0)
    assert [always_top.backoff(attempt) for attempt in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_full_jitter_draws_anywhere_between_zero_and_the_ceiling():
    seeded = policy()
    delays = [seeded.backoff(3) for _ in range(500)]
    assert all(0.0 <= delay <= 4.0 for delay in delays)
    assert min(delays) < 0.5 and max(delays) > 3.5  # the whole range is used, not a narrow band
    assert policy(rand=lambda: 0.0).backoff(5) == 0.0


def test_schedule_comes_from_settings(settings):
    settings.LLM_MAX_ATTEMPTS = 6
    settings.LLM_BACKOFF_INITIAL_SECONDS = 0.5
    settings.LLM_BACKOFF_MAX_SECONDS = 3.0
    configured = RetryPolicy.from_settings(rand=lambda: 1.0)
    assert configured.max_attempts == 6
    assert [configured.backoff(a) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(status):
    assert is_retryable(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried(status):
    assert not is_retryable(status_error(status))


def test_connection_errors_and_broken_streams_are_retried():
    assert is_retryable(anthropic.APIConnectionError(request=REQUEST))
    assert is_retryable(anthropic.APITimeoutError(request=REQUEST))
    assert is_retryable(status_error(200))  # an SSE error event after a 200 response


def test_retry_after_ms_wins_over_retry_after():
    error = status_error(429, {"retry-after-ms": "1500", "retry-after": "9"})
    assert retry_after_seconds(error) == 1.5
    assert policy().delay(error, 1) == 1.5


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds(status_error(529, {"retry-after": "3"})) == 3.0
    now = time.time()
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert retry_after_seconds(status_error(429, {"retry-after": date}), now=lambda: now) == pytest.approx(20, abs=1)


def test_without_server_hint_the_backoff_applies():
    assert policy(rand=lambda: 1.0).delay(status_error(500), 2) == 2.0


def test_attempts_stop_at_the_maximum():
    error = status_error(529)
    assert [policy().should_retry(error, attempt) for attempt in (1, 2, 3, 4)] == [True, True, True, False]


def test_a_very_long_retry_after_means_fall_back_instead_of_waiting():
    assert not policy().should_retry(status_error(429, {"retry-after": "3600"}), 1)
