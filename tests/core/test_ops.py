import pytest
from django.core.cache import cache

from apps.core.ratelimit import rate_limit_hit

pytestmark = pytest.mark.django_db


def test_healthz(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_dependency(client, llm_upstream) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "upstream": "ok"}


def test_readyz_is_unavailable_when_the_upstream_is_down(client, settings) -> None:
    settings.USE_OFFLINE_UPSTREAM = True
    settings.OFFLINE_UPSTREAM_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["upstream"].startswith("error")


def test_request_id_is_echoed_or_generated(client) -> None:
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32


def test_metrics_exposition(client) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'supportbot_http_requests_total{method="GET",status="200"}' in body
    assert "supportbot_circuit_open" in body


def test_metrics_token_is_enforced_when_set(client, settings) -> None:
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


@pytest.mark.usefixtures("one_rate_limit_window")
def test_rate_limit_counts_within_a_window() -> None:
    cache.clear()
    results = [rate_limit_hit(key="t:user", limit=3) for _ in range(5)]
    assert results == [False, False, False, True, True]
    assert rate_limit_hit(key="t:other", limit=3) is False


@pytest.mark.django_db(transaction=True)
async def test_metrics_count_sockets_and_answers(chat_env) -> None:
    from channels.db import database_sync_to_async

    from apps.core.metrics import REGISTRY
    from tests.chat.conftest import ChatSocket
    from tests.chat.factories import CustomerAccountFactory

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    user = await database_sync_to_async(lambda: CustomerAccountFactory(user__username="metered").user)()
    sockets_before = sample("supportbot_websocket_connections")
    answers_before = sample("supportbot_chat_messages_total", outcome="complete")
    calls_before = sample("supportbot_upstream_calls_total", model="claude-sonnet-4-6", status="ok")
    socket = await ChatSocket.open(user)
    await socket.receive()
    assert sample("supportbot_websocket_connections") == sockets_before + 1
    await socket.ask("How do I reset my password?")
    await socket.until_terminal()
    await socket.close()
    assert sample("supportbot_websocket_connections") == sockets_before
    assert sample("supportbot_chat_messages_total", outcome="complete") == answers_before + 1
    assert sample("supportbot_upstream_calls_total", model="claude-sonnet-4-6", status="ok") == calls_before + 1
