"""The emulator's tool use through the real SDK: a call chosen from the user's words, streamed as the API
streams it, an answer from the results, and the API's 400s for broken tool definitions and pairings."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.upstream.conftest import SONNET

RESEND = {
    "name": "resend_invoice",
    "description": "Email one of the customer's invoices again.",
    "input_schema": {
        "type": "object",
        "properties": {"invoice_number": {"type": "string"}},
        "additionalProperties": False,
    },
}
CANCEL = {
    "name": "cancel_subscription",
    "description": "Cancel the subscription at the end of the period.",
    "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
}


def test_a_streamed_tool_call_is_chosen_from_the_users_words(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=SONNET,
        max_tokens=300,
        tools=[CANCEL, RESEND],
        messages=[{"role": "user", "content": "Please resend invoice INV-2026-00042 to me"}],
    ) as stream:
        kinds = [(event.type, getattr(getattr(event, "delta", None), "type", None)) for event in stream]
        message = stream.get_final_message()
    assert ("content_block_delta", "input_json_delta") in kinds
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert (block.name, block.input) == ("resend_invoice", {"invoice_number": "INV-2026-00042"})


def test_no_tool_is_called_when_none_fits_or_tool_choice_is_none(client: anthropic.Anthropic) -> None:
    asked = {"role": "user", "content": "Please resend invoice INV-2026-00042"}
    plain = client.messages.create(
        model=SONNET,
        max_tokens=300,
        tools=[CANCEL],
        messages=[{"role": "user", "content": "How do I reset my password?"}],
    )
    forbidden = client.messages.create(
        model=SONNET, max_tokens=300, tools=[RESEND], tool_choice={"type": "none"}, messages=[asked]
    )
    assert plain.stop_reason == forbidden.stop_reason == "end_turn"
    assert all(block.type == "text" for block in plain.content + forbidden.content)


def test_the_next_turn_answers_from_the_tool_result(client: anthropic.Anthropic) -> None:
    asked = {"role": "user", "content": "resend invoice INV-7"}
    call = client.messages.create(model=SONNET, max_tokens=300, tools=[RESEND], messages=[asked])
    tool_use = call.content[0]
    result = {"sent": True, "invoice_number": "INV-7", "sent_to": "billing@example.com"}
    answer = client.messages.create(
        model=SONNET,
        max_tokens=300,
        tools=[RESEND],
        messages=[
            asked,
            {"role": "assistant", "content": [tool_use.model_dump(exclude_none=True)]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": json.dumps(result)}],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert "INV-7" in answer.content[0].text and "billing@example.com" in answer.content[0].text


@pytest.mark.parametrize(
    ("tools", "messages", "expected"),
    [
        (
            [{"name": "resend_invoice", "description": "x"}],
            [{"role": "user", "content": "hi"}],
            "tools.0.input_schema: Field required",
        ),
        ([RESEND, RESEND], [{"role": "user", "content": "hi"}], "tools: Tool names must be unique."),
        (
            [RESEND],
            [
                {"role": "user", "content": "resend invoice"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_a", "name": "resend_invoice", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_other", "content": "{}"}]},
            ],
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_other",
        ),
    ],
)
def test_broken_tool_requests_get_the_apis_400(client: anthropic.Anthropic, tools, messages, expected) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=SONNET, max_tokens=50, tools=tools, messages=messages)
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert expected in caught.value.body["error"]["message"]
