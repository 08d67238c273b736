"""Messages and token counting through the real SDK over real HTTP."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from apps.upstream.testing import RunningUpstream

from .conftest import HAIKU, SONNET

DOCS = (
    "You are the Acme support assistant.\n<documents>\n"
    '<document title="Refunds">Customers can request a full refund within 30 days of purchase from the billing page.'
    "\n\nRefunds reach the original card within 5 to 10 business days.</document>\n"
    '<document title="Passwords">To reset your password, click Forgot password on the login page and follow '
    "the emailed link.</document>\n</documents>"
)


def ask(client: anthropic.Anthropic, question: str, **overrides: object) -> anthropic.types.Message:
    params: dict[str, object] = {
        "model": SONNET,
        "max_tokens": 300,
        "system": DOCS,
        "messages": [{"role": "user", "content": question}],
        **overrides,
    }
    return client.messages.create(**params)  # type: ignore[arg-type]


def test_create_returns_a_complete_message(client: anthropic.Anthropic) -> None:
    message = ask(client, "How do I reset my password?")

    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant" and message.model == SONNET
    assert message.stop_reason == "end_turn"
    assert "Forgot password" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_creation_input_tokens == 0 and message.usage.cache_read_input_tokens == 0
    assert message.usage.service_tier == "standard"


def test_request_id_header_and_rate_limit_headers(client: anthropic.Anthropic) -> None:
    raw_response = client.messages.with_raw_response.create(
        model=SONNET, max_tokens=20, messages=[{"role": "user", "content": "hello"}]
    )
    assert raw_response.headers["request-id"].startswith("req_")
    assert int(raw_response.headers["anthropic-ratelimit-requests-limit"]) > 0


def test_output_tokens_match_the_streamed_deltas(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=SONNET,
        max_tokens=300,
        system=DOCS,
        messages=[{"role": "user", "content": "How long does a refund take?"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert "".join(pieces) == final.content[0].text
    assert "5 to 10 business days" in final.content[0].text
    assert final.usage.output_tokens == len(pieces)
    assert final.stop_reason == "end_turn"


def test_raw_sse_event_order(upstream: RunningUpstream, raw: httpx.Client) -> None:
    body = {"model": SONNET, "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    with raw.stream("POST", "/v1/messages", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()

    events = [block for block in text.strip().split("\n\n")]
    names = [block.split("\n")[0].removeprefix("event: ") for block in events]
    payloads = [json.loads(block.split("\n")[1].removeprefix("data: ")) for block in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(payload["type"] == name for name, payload in zip(names, payloads, strict=True))

    start = payloads[0]["message"]
    assert start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    assert {"cache_creation_input_tokens", "cache_read_input_tokens"} <= set(start["usage"])
    delta = payloads[-2]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == len(names) - 6  # cumulative: one token per text delta


@pytest.mark.asyncio
async def test_async_client_create_and_stream(upstream: RunningUpstream) -> None:
    async with anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key="test", max_retries=0) as client:
        message = await client.messages.create(
            model=SONNET, max_tokens=200, system=DOCS, messages=[{"role": "user", "content": "refund please"}]
        )
        async with client.messages.stream(
            model=SONNET, max_tokens=200, system=DOCS, messages=[{"role": "user", "content": "refund please"}]
        ) as stream:
            streamed = "".join([text async for text in stream.text_stream])
    assert message.content[0].text == streamed


def test_max_tokens_cuts_the_answer(client: anthropic.Anthropic) -> None:
    message = ask(client, "How do I reset my password?", max_tokens=5)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5


def test_stop_sequence_ends_the_answer_before_it(client: anthropic.Anthropic) -> None:
    message = ask(client, "How do I reset my password?", stop_sequences=["login page"])
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "login page"
    assert message.content[0].text.endswith("on the ")


def test_zero_max_tokens_prewarms_without_output(client: anthropic.Anthropic) -> None:
    message = ask(client, "hello", max_tokens=0)
    assert message.content == [] and message.stop_reason == "max_tokens" and message.usage.output_tokens == 0


def test_prefill_is_continued(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=SONNET,
        max_tokens=200,
        system='Classify the transcript. Reply in JSON with keys "category" and "resolved".',
        messages=[
            {"role": "user", "content": "<transcript>Customer: my invoice is wrong</transcript>"},
            {"role": "assistant", "content": "{"},
        ],
    )
    parsed = json.loads("{" + message.content[0].text)
    assert parsed == {"category": "billing", "resolved": False}


def test_count_tokens_matches_create_usage(client: anthropic.Anthropic) -> None:
    request = {"model": SONNET, "system": DOCS, "messages": [{"role": "user", "content": "refund?"}]}
    counted = client.messages.count_tokens(**request)  # type: ignore[arg-type]
    created = client.messages.create(max_tokens=50, **request)  # type: ignore[arg-type]
    assert counted.input_tokens == created.usage.input_tokens > 0


def test_count_tokens_rejects_create_only_fields(raw: httpx.Client) -> None:
    body = {"model": SONNET, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    response = raw.post("/v1/messages/count_tokens", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"


def test_forced_tool_choice_returns_a_tool_call(client: anthropic.Anthropic) -> None:
    tool = {
        "name": "record_classification",
        "description": "Record the classification",
        "input_schema": {
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["billing", "account", "technical", "other"]},
                "escalation_needed": {"type": "boolean"},
            },
        },
    }
    message = client.messages.create(
        model=HAIKU,
        max_tokens=200,
        tools=[tool],
        tool_choice={"type": "tool", "name": "record_classification"},
        messages=[{"role": "user", "content": "Customer: I want to speak to a manager about my refund"}],
    )
    assert message.stop_reason == "tool_use"
    assert message.content[0].input == {"category": "billing", "escalation_needed": True}


def test_an_assistant_turn_may_come_first(client: anthropic.Anthropic) -> None:
    """The real API accepts a conversation that opens with the assistant's greeting (only Bedrock refused it)."""
    message = client.messages.create(
        model=SONNET,
        max_tokens=50,
        messages=[
            {"role": "assistant", "content": "Hi, I'm the Acme assistant. How can I help?"},
            {"role": "user", "content": "Where is my invoice?"},
        ],
    )
    assert message.role == "assistant" and message.content[0].text and message.usage.output_tokens > 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}, "model: Field required"),
        ({"model": SONNET, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens: Field required"),
        ({"model": SONNET, "max_tokens": -1, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens:"),
        ({"model": SONNET, "max_tokens": 10, "messages": []}, "messages: at least one message is required"),
        ({"model": SONNET, "max_tokens": 10, "messages": [{"role": "bot", "content": "hi"}]}, "messages.0.role"),
        (
            {
                "model": SONNET,
                "max_tokens": 10,
                "system": [{"type": "image"}],
                "messages": [{"role": "user", "content": "hi"}],
            },
            "system.0",
        ),
        (
            {"model": SONNET, "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: Field required",
        ),
        (
            {"model": SONNET, "max_tokens": 10, "bogus": 1, "messages": [{"role": "user", "content": "hi"}]},
            "bogus: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_bodies_are_rejected(raw: httpx.Client, body: dict[str, object], message: str) -> None:
    response = raw.post("/v1/messages", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert payload["request_id"].startswith("req_")
    assert message in payload["error"]["message"]


def test_sampling_parameters_depend_on_api_version(client: anthropic.Anthropic, raw: httpx.Client) -> None:
    body = {"model": SONNET, "max_tokens": 10, "temperature": 0.2, "messages": [{"role": "user", "content": "hi"}]}
    assert raw.post("/v1/messages", json=body).status_code == 200  # 2023-06-01 still accepts them
    assert raw.post("/v1/messages", json={**body, "temperature": 1.5}).status_code == 400
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        client.messages.create(
            model=SONNET, max_tokens=10, messages=[{"role": "user", "content": "hi"}], extra_body={"temperature": 0.2}
        )


def test_invalid_json_body(raw: httpx.Client) -> None:
    response = raw.post("/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
