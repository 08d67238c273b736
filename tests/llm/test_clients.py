"""Client configuration: offline emulator, keyless base URL, or the SDK's own environment reading."""

import pytest

from apps.llm import clients


@pytest.fixture(autouse=True)
def fresh_clients(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    clients.reset_clients()
    yield
    clients.reset_clients()


def test_offline_upstream_gets_url_and_placeholder_key(settings):
    settings.USE_OFFLINE_UPSTREAM = True
    settings.OFFLINE_UPSTREAM_URL = "http://127.0.0.1:8100"
    client = clients.get_client()
    assert str(client.base_url).rstrip("/") == "http://127.0.0.1:8100"
    assert client.api_key == settings.OFFLINE_API_KEY
    assert client.max_retries == 0


def test_base_url_without_key_uses_the_placeholder(settings, monkeypatch):
    settings.USE_OFFLINE_UPSTREAM = False
    settings.ANTHROPIC_BASE_URL_CONFIGURED = True
    settings.ANTHROPIC_API_KEY_CONFIGURED = False
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://compatible.test:9000")
    client = clients.get_client()
    assert str(client.base_url).rstrip("/") == "http://compatible.test:9000"
    assert client.api_key == settings.OFFLINE_API_KEY


def test_real_key_is_read_by_the_sdk_from_the_environment(settings, monkeypatch):
    settings.USE_OFFLINE_UPSTREAM = False
    settings.ANTHROPIC_API_KEY_CONFIGURED = True
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-from-env")
    sync_client = clients.get_client()
    async_client = clients.get_async_client()
    assert sync_client.api_key == "sk-ant-test-from-env" == async_client.api_key
    assert str(sync_client.base_url).rstrip("/") == "https://api.anthropic.com"


def test_timeouts_come_from_settings(settings):
    settings.USE_OFFLINE_UPSTREAM = True
    settings.LLM_CONNECT_TIMEOUT_SECONDS = 3.0
    settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 7.0
    settings.LLM_TOTAL_TIMEOUT_SECONDS = 50.0
    sync_timeout = clients.get_client().timeout
    stream_timeout = clients.get_async_client().timeout
    assert (sync_timeout.connect, sync_timeout.read, sync_timeout.write) == (3.0, 50.0, 50.0)
    assert (stream_timeout.connect, stream_timeout.read) == (3.0, 7.0)


def test_clients_are_reused_until_reset(settings):
    settings.USE_OFFLINE_UPSTREAM = True
    first = clients.get_client()
    assert clients.get_client() is first
    clients.reset_clients()
    assert clients.get_client() is not first


async def test_one_async_client_per_event_loop(settings):
    settings.USE_OFFLINE_UPSTREAM = True
    assert clients.get_async_client() is clients.get_async_client()


@pytest.mark.django_db(transaction=True)
async def test_request_sent_signal_resolves_once_the_request_has_left_not_when_the_answer_comes(llm_upstream):
    """The chat consumer stores a question only after its early upstream request is written."""
    import asyncio

    from tests.conftest import set_faults

    set_faults(llm_upstream, {"latency_ms": 400})  # the emulator answers 0.4 s after reading the request
    client = clients.get_async_client()
    params = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    sent = asyncio.get_running_loop().create_future()
    untouched = asyncio.get_running_loop().create_future()
    with clients.request_sent_signal(sent):
        call = asyncio.ensure_future(client.messages.create(**params))  # the task inherits the signal
    other = asyncio.ensure_future(client.messages.create(**params))  # made outside the block

    await asyncio.wait_for(sent, timeout=5)
    assert not call.done()  # resolved by the write, not by the response
    assert (await call).content and (await other).content
    assert not untouched.done()
