"""Batch helpers: request params, result logging at batch prices, through the emulator's Batches API."""

import time
from decimal import Decimal

import anthropic
import pytest

from apps.llm.batch import batch_request_params, batch_result_record, message_text
from apps.llm.clients import get_client
from apps.llm.pricing import cost_usd
from tests.conftest import set_faults
from tests.llm.factories import PromptPartsFactory

pytestmark = pytest.mark.django_db


def test_params_carry_the_cached_system_prompt_and_no_stream():
    prompt = PromptPartsFactory()
    params = batch_request_params(prompt=prompt, user_text="<transcript>hi</transcript>", model="claude-haiku-4-5")
    assert params["model"] == "claude-haiku-4-5" and params["max_tokens"] == prompt.max_tokens
    assert "stream" not in params
    assert params["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert params["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "<transcript>hi</transcript>"}]}
    ]


def test_result_record_prices_at_half_and_logs_errors():
    prompt = PromptPartsFactory()
    message = anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": '{"category": "billing"}'}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 2_000,
                "output_tokens": 100,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 8_000,
            },
        }
    )
    call = batch_result_record(
        custom_id="tb1-c2-a1", model="claude-haiku-4-5", message=message, prompt=prompt, conversation_id="c9"
    )
    # Haiku $1/$5: 2,000 in = 0.002, 8,000 read = 0.0008, 100 out = 0.0005 → 0.0033, halved = 0.00165.
    assert call.cost_usd == Decimal("0.00165")
    assert (call.is_batch, call.status, call.request_id, call.output_chars) == (True, "ok", "tb1-c2-a1", 23)
    failed = batch_result_record(
        custom_id="tb1-c3-a1",
        model="claude-haiku-4-5",
        message=None,
        prompt=prompt,
        conversation_id="c9",
        error_type="overloaded_error",
    )
    assert (failed.status, failed.error_type, failed.cost_usd) == ("error", "overloaded_error", Decimal(0))


def test_a_batch_through_the_emulator_is_logged_per_result(llm_upstream):
    set_faults(llm_upstream, {"batch_processing_seconds": 0})
    prompt = PromptPartsFactory()
    client = get_client()
    requests = [
        {
            "custom_id": f"req-{n}",
            "params": batch_request_params(prompt=prompt, user_text=f"Ticket {n}", model="claude-haiku-4-5"),
        }
        for n in range(2)
    ]
    batch = client.messages.batches.create(requests=requests)
    deadline = time.monotonic() + 10
    while batch.processing_status != "ended" and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.messages.batches.retrieve(batch.id)
    assert batch.processing_status == "ended"
    calls = []
    for result in client.messages.batches.results(batch.id):
        assert result.result.type == "succeeded"
        message = result.result.message
        assert message_text(message)
        calls.append(
            batch_result_record(
                custom_id=result.custom_id, model="claude-haiku-4-5", message=message, prompt=prompt, conversation_id=""
            )
        )
    assert sorted(call.request_id for call in calls) == ["req-0", "req-1"]
    for call in calls:
        full = cost_usd(
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_creation_input_tokens=call.cache_creation_input_tokens,
            cache_read_input_tokens=call.cache_read_input_tokens,
        )
        assert call.cost_usd == (full / 2).quantize(Decimal("0.00000001")) and call.cost_usd > 0
