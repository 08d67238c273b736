"""Every error type through the SDK's exception classes, and every fault-injection knob."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import pytest

from apps.upstream.testing import RunningUpstream

from .conftest import HAIKU, OPUS, SONNET, long_text

HELLO = [{"role": "user", "content": "hello"}]


def create(client: anthropic.Anthropic, model: str = SONNET, **extra: object) -> anthropic.types.Message:
    return client.messages.create(model=model, max_tokens=50, messages=HELLO, **extra)  # type: ignore[arg-type]


def test_prompt_too_long_is_a_bad_request_with_the_real_message(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model=SONNET, max_tokens=10, messages=[{"role": "user", "content": long_text(200_100)}])
    assert raised.value.status_code == 400
    message = raised.value.api_message or ""
    assert message.startswith("prompt is too long: ") and message.endswith(" tokens > 200000 maximum")
    assert int(message.split()[4]) > 200_000


def test_unknown_path_uses_the_error_envelope(raw: httpx.Client) -> None:
    response = raw.get("/v1/nope")
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


def test_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        create(client, model="claude-haiku-3-5")
    assert raised.value.type == "not_found_error" and raised.value.api_message == "model: claude-haiku-3-5"
    assert (raised.value.request_id or "").startswith("req_")


@pytest.mark.parametrize(
    ("status", "exception", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_forced_errors_map_to_sdk_exceptions(
    client: anthropic.Anthropic, upstream: RunningUpstream, status: int, exception: type[Exception], error_type: str
) -> None:
    upstream.control.set_faults({"force_errors": [status]})
    with pytest.raises(exception) as raised:
        create(client)
    assert isinstance(raised.value, anthropic.APIStatusError)
    assert raised.value.status_code == status and raised.value.type == error_type
    assert create(client).stop_reason == "end_turn"  # consumed: the next request succeeds


def test_rate_limit_carries_retry_after_and_ratelimit_headers(
    client: anthropic.Anthropic, upstream: RunningUpstream
) -> None:
    upstream.control.set_faults({"force_errors": [429], "retry_after_seconds": 7})
    with pytest.raises(anthropic.RateLimitError) as raised:
        create(client)
    headers = raised.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_sdk_retries_honour_retry_after(upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"force_errors": [529, 429], "retry_after_seconds": 0.05})
    with anthropic.Anthropic(base_url=upstream.base_url, api_key="test", max_retries=2) as client:
        assert create(client).stop_reason == "end_turn"
    assert [entry["status"] for entry in upstream.control.requests(3)] == [529, 429, 200]


def test_forced_errors_scoped_to_one_model(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"force_errors": [{"status": 529, "model": OPUS, "count": 2}]})
    assert create(client, model=SONNET).stop_reason == "end_turn"
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            create(client, model=OPUS)
    assert create(client, model=OPUS).stop_reason == "end_turn"


def test_error_rates_are_applied_per_request(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"error_rates": {"500": 0.5}, "seed": 3})
    outcomes = []
    for _ in range(24):
        try:
            create(client)
            outcomes.append("ok")
        except anthropic.InternalServerError:
            outcomes.append("500")
    assert 4 <= outcomes.count("500") <= 20
    stats = upstream.control.stats()
    assert stats["by_model"][SONNET]["500"] == outcomes.count("500")


def test_faults_scoped_by_models_and_per_model_overrides(
    client: anthropic.Anthropic, upstream: RunningUpstream
) -> None:
    upstream.control.set_faults(
        {"error_rates": {"529": 1.0}, "models": [OPUS], "per_model": {HAIKU: {"error_rates": {"429": 1.0}}}}
    )
    assert create(client, model=SONNET).stop_reason == "end_turn"
    with pytest.raises(anthropic.OverloadedError):
        create(client, model=OPUS)
    with pytest.raises(anthropic.RateLimitError):
        create(client, model=HAIKU)


def test_latency_delays_the_response(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"latency_ms": 300})
    started = time.perf_counter()
    create(client)
    assert time.perf_counter() - started >= 0.3


def test_first_token_delay_and_token_pacing_in_a_stream(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"first_token_ms": 300, "token_ms": 20})
    started = time.perf_counter()
    with client.messages.stream(model=SONNET, max_tokens=5, messages=HELLO) as stream:
        iterator = iter(stream.text_stream)
        next(iterator)
        first_token_after = time.perf_counter() - started
        rest = list(iterator)
    total = time.perf_counter() - started
    assert first_token_after >= 0.3
    # Deltas are due on a schedule from the first one (a late stream catches up in one write), so
    # the gap between two received deltas can be short; the schedule's end cannot come early.
    assert total >= 0.3 + 0.02 * len(rest) - 0.005


def test_stream_cut_with_an_error_event_raises_in_the_sdk(
    client: anthropic.Anthropic, upstream: RunningUpstream
) -> None:
    upstream.control.set_faults({"cut_stream_after_tokens": 2})
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(model=SONNET, max_tokens=50, messages=HELLO) as stream,
    ):
        received.extend(stream.text_stream)
    assert len(received) == 2
    assert raised.value.status_code == 200 and raised.value.type == "overloaded_error"


def test_stream_cut_by_dropping_the_connection(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"cut_stream_after_tokens": 1, "cut_mode": "drop"})
    # The SDK's public promise for a connection that breaks mid-stream is APIConnectionError
    # (older releases let the transport's own exception through; the lock pins one that wraps it).
    with (
        pytest.raises(anthropic.APIConnectionError, match="incomplete"),
        client.messages.stream(model=SONNET, max_tokens=50, messages=HELLO) as stream,
    ):
        list(stream.text_stream)


def test_malformed_empty_body(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"malformed": "empty_body"})
    with pytest.raises(json.JSONDecodeError):
        create(client)


def test_malformed_invalid_json(client: anthropic.Anthropic, upstream: RunningUpstream, raw: httpx.Client) -> None:
    upstream.control.set_faults({"malformed": "invalid_json"})
    response = raw.post("/v1/messages", json={"model": SONNET, "max_tokens": 5, "messages": HELLO})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    with pytest.raises(json.JSONDecodeError):
        create(client)


def test_malformed_prose_instead_of_json(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"malformed": "prose_instead_of_json"})
    message = client.messages.create(
        model=SONNET,
        max_tokens=200,
        system='Classify the transcript. Respond with JSON only, with keys "category" and "resolved".',
        messages=[{"role": "user", "content": "<transcript>Customer: refund please</transcript>"}],
    )
    assert not message.content[0].text.lstrip().startswith("{")


def test_invalid_fault_config_is_rejected(upstream: RunningUpstream) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        upstream.control.set_faults({"cut_mode": "explode"})
    with pytest.raises(httpx.HTTPStatusError):
        upstream.control.set_faults({"no_such_fault": 1})


def test_faults_round_trip_and_reset(upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"latency_ms": 5, "force_errors": [{"status": 529, "model": OPUS}]})
    faults = upstream.control.get_faults()
    assert faults["latency_ms"] == 5 and faults["force_errors"][0]["model"] == OPUS
    upstream.control.reset()
    assert upstream.control.get_faults()["latency_ms"] == 0
