"""Both auth styles and API versions, the request log, and the control-endpoint guard."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from apps.upstream.config import EmulatorConfig
from apps.upstream.testing import RunningUpstream, start_upstream_in_thread

from .conftest import SONNET

BODY = {"model": SONNET, "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}


def test_sdk_sends_bearer_auth_and_the_current_version(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    client.messages.create(**BODY)  # type: ignore[arg-type]
    logged = upstream.control.last_request()
    assert logged["headers"]["authorization"] == "Bearer [redacted]"
    assert logged["headers"]["anthropic-version"] == "2026-10-21"
    assert logged["body"]["messages"] == BODY["messages"] and logged["status"] == 200
    assert "test" not in str(logged["headers"])  # the key itself is never logged


def test_x_api_key_with_the_legacy_version(raw: httpx.Client, upstream: RunningUpstream) -> None:
    response = raw.post("/v1/messages", json=BODY)
    assert response.status_code == 200 and response.headers["request-id"].startswith("req_")
    assert upstream.control.last_request()["headers"]["x-api-key"] == "[redacted]"


def test_missing_credentials_is_an_authentication_error(upstream: RunningUpstream) -> None:
    response = httpx.post(f"{upstream.base_url}/v1/messages", json=BODY, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_missing_or_unknown_version_is_a_bad_request(upstream: RunningUpstream) -> None:
    url = f"{upstream.base_url}/v1/messages"
    missing = httpx.post(url, json=BODY, headers={"x-api-key": "k"})
    assert missing.status_code == 400 and "anthropic-version" in missing.json()["error"]["message"]
    unknown = httpx.post(url, json=BODY, headers={"x-api-key": "k", "anthropic-version": "1999-01-01"})
    assert unknown.status_code == 400


def test_configured_api_key_and_control_token() -> None:
    with start_upstream_in_thread(EmulatorConfig(api_key="right", control_token="secret")) as running:
        with (
            anthropic.Anthropic(base_url=running.base_url, api_key="wrong", max_retries=0) as wrong,
            pytest.raises(anthropic.AuthenticationError),
        ):
            wrong.messages.create(**BODY)  # type: ignore[arg-type]
        with anthropic.Anthropic(base_url=running.base_url, api_key="right", max_retries=0) as right:
            assert right.messages.create(**BODY).stop_reason == "end_turn"  # type: ignore[arg-type]

        assert httpx.get(f"{running.base_url}/_control/stats").status_code == 403
        assert running.control.stats()["by_status"] == {"401": 1, "200": 1}


def test_request_log_limit_and_order(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    for word in ("one", "two", "three"):
        client.messages.create(model=SONNET, max_tokens=5, messages=[{"role": "user", "content": word}])
    logged = upstream.control.requests(limit=2)
    assert [entry["body"]["messages"][0]["content"] for entry in logged] == ["two", "three"]


def test_healthz(upstream: RunningUpstream) -> None:
    assert httpx.get(f"{upstream.base_url}/healthz").json() == {"status": "ok"}
