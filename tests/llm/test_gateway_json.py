"""JSON tasks: validation, one clarifying retry, then the caller's fallback; summaries; previews."""

import json
from typing import Literal

import anthropic
import httpx2
import pydantic
import pytest

from apps.accounts import demo_content
from apps.llm import resilience
from apps.llm.gateway import complete_json, parse_json_reply, preview_request, summarise_history
from apps.llm.models import LLMCall
from apps.llm.types import PromptParts, Turn
from tests.conftest import received_requests, set_faults
from tests.llm.factories import PromptPartsFactory

pytestmark = pytest.mark.django_db

TRANSCRIPT = (
    "<transcript>\nCustomer: Where can I download the PDF of my last invoice?\n"
    "Assistant: Settings, then Billing, then Invoices, then Download PDF.\nCustomer: Found it, thanks!\n</transcript>"
)


class Classification(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    category: Literal["billing", "account", "technical", "other"]
    resolved: bool
    sentiment: Literal["positive", "neutral", "negative"]
    escalation_needed: bool
    language: str
    summary: str
    # Asked for by the demo classifier; optional as in apps.triage.schema (older versions omit them).
    knowledge_gap: bool | None = None
    gap_topic: str = ""
    cx_score: int | None = None


def classifier_prompt() -> PromptParts:
    return PromptParts(
        slug="transcript-classifier",
        version="1.0.0",
        version_id=3,
        persona=demo_content.load_text("classifier_persona"),
        business_rules=demo_content.load_text("classifier_rules"),
        output_format=demo_content.load_text("classifier_output_format"),
        reference_documents=(),
        few_shot_examples=demo_content.load_text("classifier_few_shot"),
        max_tokens=400,
    )


def test_valid_json_is_returned_as_the_schema_object(llm_upstream):
    result = complete_json(prompt=classifier_prompt(), user_text=TRANSCRIPT, schema=Classification)
    assert result.ok, result.error
    assert isinstance(result.data, Classification)
    assert result.data.category == "billing"
    assert result.attempts == 1 and result.model == "claude-haiku-4-5"
    [call] = LLMCall.objects.all()
    assert (call.task_type, call.prompt_slug, call.status) == ("classification", "transcript-classifier", "ok")


def test_prose_twice_returns_a_failed_result_for_the_callers_fallback(llm_upstream):
    set_faults(llm_upstream, {"malformed": "prose_instead_of_json"})
    result = complete_json(prompt=classifier_prompt(), user_text=TRANSCRIPT, schema=Classification)
    assert not result.ok and result.data is None
    assert result.raw_text and result.error
    assert result.attempts == 2
    bodies = [e["body"] for e in received_requests(llm_upstream) if e["path"] == "/v1/messages"]
    assert len(bodies) == 2
    follow_up = bodies[1]["messages"][-1]["content"][0]["text"]
    assert "not valid JSON for the schema" in follow_up and '"category"' in follow_up
    assert bodies[1]["messages"][1]["role"] == "assistant"
    assert LLMCall.objects.count() == 2


def test_upstream_down_returns_a_failed_result_instead_of_raising(llm_upstream, waits):
    set_faults(llm_upstream, {"error_rates": {"529": 1.0}})
    result = complete_json(
        prompt=classifier_prompt(), user_text=TRANSCRIPT, schema=Classification, policy=waits.policy()
    )
    assert (result.ok, result.error) == (False, "upstream_unavailable")
    assert len(waits) == 3  # four attempts on haiku, nothing lower to fall back to


def _mock_client(replies: list[str], seen: list[dict]) -> anthropic.Anthropic:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        text = replies[len(seen) - 1]
        return httpx2.Response(
            200,
            json={
                "id": f"msg_{len(seen)}",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 20},
            },
        )

    return anthropic.Anthropic(
        api_key="test",
        base_url="http://upstream.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def test_invalid_json_is_retried_once_with_the_error_then_accepted(monkeypatch):
    seen: list[dict] = []
    good = (
        '{"category": "account", "resolved": false, "sentiment": "neutral", "escalation_needed": true, '
        '"language": "de", "summary": "2FA reset."}'
    )
    client = _mock_client(['Sure! {"category": "account", "resolved": "maybe"}', good], seen)
    monkeypatch.setattr(resilience, "get_client", lambda: client)
    result = complete_json(prompt=classifier_prompt(), user_text=TRANSCRIPT, schema=Classification)
    assert result.ok and result.attempts == 2
    assert result.data.escalation_needed is True
    assert "resolved" in seen[1]["messages"][-1]["content"][0]["text"]  # the validation error is quoted back


@pytest.mark.parametrize(
    "text",
    [
        "I think it's billing.",
        '{"category": "billing"',
        (
            '{"category": "billing", "resolved": true, "sentiment": "positive", "escalation_needed": false, '
            '"language": "en", "summary": "x", "extra": 1}'
        ),
    ],
)
def test_parse_json_reply_rejects_prose_bad_json_and_wrong_keys(text):
    assert parse_json_reply(text, Classification) is None


def test_parse_json_reply_accepts_fenced_json():
    text = (
        '```json\n{"category": "other", "resolved": true, "sentiment": "positive", "escalation_needed": false, '
        '"language": "en", "summary": "hi"}\n```'
    )
    assert parse_json_reply(text, Classification).category == "other"


def test_summarise_history_uses_the_summarisation_route(llm_upstream):
    turns = (Turn("user", "My invoice INV-2041 is wrong"), Turn("assistant", "I have opened ticket 12 for it."))
    summary = summarise_history(turns=turns, language="en", conversation_id="c-1")
    assert summary
    call = LLMCall.objects.get()
    assert (call.task_type, call.model, call.conversation_id) == ("summarisation", "claude-haiku-4-5", "c-1")
    body = received_requests(llm_upstream)[-1]["body"]
    assert "INV-2041" in body["messages"][0]["content"][0]["text"]


def test_preview_counts_the_exact_request_and_its_cached_prefix(llm_upstream):
    result = preview_request(PromptPartsFactory(), "Where is my invoice?", "<account_context>\nx\n</account_context>")
    assert result.model == "claude-sonnet-4-6" and not result.estimated
    assert result.params["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert 4_000 < result.cached_prefix_tokens < result.input_tokens
    assert result.min_cacheable_tokens == 1_024
    assert not any("below the" in warning for warning in result.warnings)


def test_preview_warns_when_the_prefix_is_too_short_to_cache(llm_upstream):
    parts = PromptPartsFactory(reference_documents=(), few_shot_examples="")
    result = preview_request(parts, "hi", "", plan_tier="free")
    assert result.model == "claude-haiku-4-5" and result.min_cacheable_tokens == 4_096
    assert result.cached_prefix_tokens < 4_096
    assert any("below the 4,096-token minimum" in warning for warning in result.warnings)


def test_preview_falls_back_to_a_local_estimate_when_counting_fails(settings):
    settings.USE_OFFLINE_UPSTREAM = True
    settings.OFFLINE_UPSTREAM_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    from apps.llm.clients import reset_clients

    reset_clients()
    try:
        result = preview_request(PromptPartsFactory(), "hi", "", model="claude-sonnet-4-6")
    finally:
        reset_clients()
    assert result.estimated and result.input_tokens > result.cached_prefix_tokens > 4_000
    assert any("estimates" in warning for warning in result.warnings)


@pytest.mark.parametrize("mode", ["invalid_json", "empty_body"])
def test_malformed_upstream_bodies_do_not_raise(llm_upstream, waits, mode):
    set_faults(llm_upstream, {"malformed": mode})
    result = complete_json(
        prompt=classifier_prompt(), user_text=TRANSCRIPT, schema=Classification, policy=waits.policy()
    )
    assert (result.ok, result.error) == (False, "upstream_unavailable")
    assert set(LLMCall.objects.values_list("error_type", flat=True)) == {"malformed_response"}
