"""Knowledge-gap article drafts: structured-output requests answered deterministically, in batches and not.

Shapes are checked against the SDK's own types (MessageBatchIndividualResponse, Message), not our code.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message
from anthropic.types.messages import MessageBatchIndividualResponse, MessageBatchSucceededResult

from apps.triage.drafting import DRAFT_SCHEMA, AskedQuestion, GapDraftRequest, RelatedArticle, draft_request_params
from apps.upstream.testing import RunningUpstream

from .conftest import HAIKU

XERO = GapDraftRequest(
    draft_id=7,
    attempt=1,
    clarifying=False,
    topic="export invoices xero",
    for_date="2026-03-10",
    questions=(
        AskedQuestion("c1", "en", "Can I export my invoices straight into Xero?"),
        AskedQuestion("c2", "en", "Can I export my invoices into Xero? Send it to [email] please."),
    ),
    articles=(RelatedArticle("Invoices", "https://help.example.com/invoices", "en", "Open Billing, then Invoices."),),
)
LINUX_DE = GapDraftRequest(
    draft_id=8,
    attempt=1,
    clarifying=False,
    topic="linux desktop app",
    for_date="2026-03-10",
    questions=(AskedQuestion("c3", "", "Gibt es eine Desktop-App für Linux? Ich nutze die Web-Version nicht gern."),),
    articles=(),
)


def draft_item(custom_id: str, request: GapDraftRequest = XERO) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": draft_request_params(request, model=HAIKU)}


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {line.custom_id: line.result for line in client.messages.batches.results(batch_id)}


def test_a_batch_answers_each_draft_request_with_the_schema_s_json(client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[draft_item("tb1-g7-a1"), draft_item("tb1-g8-a1", LINUX_DE)])
    by_id = results(client, batch.id)

    xero, linux = by_id["tb1-g7-a1"], by_id["tb1-g8-a1"]
    assert isinstance(xero, MessageBatchSucceededResult) and xero.message.stop_reason == "end_turn"
    draft = json.loads(xero.message.content[0].text)
    assert set(draft) == set(DRAFT_SCHEMA["required"])
    assert (draft["title"], draft["language"]) == ("Export invoices xero", "en")
    assert "- Can I export my invoices straight into Xero?" in draft["body"]
    assert "[Invoices](https://help.example.com/invoices)" in draft["body"]  # linked, not repeated
    assert "Open Billing" not in draft["body"]
    assert xero.message.usage.service_tier == "batch" and xero.message.usage.output_tokens > 0
    assert json.loads(linux.message.content[0].text)["language"] == "de"


def test_the_same_draft_request_gets_the_same_answer(client: anthropic.Anthropic) -> None:
    first = client.messages.batches.create(requests=[draft_item("a-1")])
    second = client.messages.batches.create(requests=[draft_item("b-1")])
    text = results(client, first.id)["a-1"].message.content[0].text
    assert results(client, second.id)["b-1"].message.content[0].text == text
    # The Messages API gives the same draft as a batch does.
    params = draft_request_params(XERO, model=HAIKU)
    message = client.messages.create(**params)
    assert message.content[0].text == text


def test_result_lines_have_the_api_s_shape(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    batch = client.messages.batches.create(requests=[draft_item("tb2-g7-a1")])
    client.messages.batches.retrieve(batch.id)  # processes it
    headers = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
    body = httpx.get(f"{upstream.base_url}/v1/messages/batches/{batch.id}/results", headers=headers).text
    (line,) = [json.loads(raw) for raw in body.splitlines() if raw.strip()]

    assert set(line) == set(MessageBatchIndividualResponse.model_fields)
    assert set(line["result"]) == {"type", "message"}
    message = line["result"]["message"]
    assert set(message) <= set(Message.model_fields)
    required = {name for name, field in Message.model_fields.items() if field.is_required()}
    assert required <= set(message)
    assert Message.model_validate(message).content[0].type == "text"


def test_a_malformed_batch_answer_can_be_injected_for_the_next_requests(
    client: anthropic.Anthropic, upstream: RunningUpstream
) -> None:
    upstream.control.set_faults({"batch_malformed_count": 1})
    batch = client.messages.batches.create(requests=[draft_item("m-1"), draft_item("m-2")])
    by_id = results(client, batch.id)

    with pytest.raises(json.JSONDecodeError):
        json.loads(by_id["m-1"].message.content[0].text)
    assert json.loads(by_id["m-2"].message.content[0].text)["title"] == "Export invoices xero"


@pytest.mark.parametrize(
    ("output_config", "message"),
    [
        ({"format": {"type": "xml", "schema": {}}}, "output_config.format.type"),
        ({"format": {"type": "json_schema"}}, "output_config.format.schema: Field required"),
        ({"shape": "json"}, "output_config.shape: Extra inputs are not permitted"),
    ],
)
def test_a_bad_output_config_is_refused(client: anthropic.Anthropic, output_config: dict, message: str) -> None:
    params = {**draft_request_params(XERO, model=HAIKU), "output_config": output_config}
    with pytest.raises(anthropic.BadRequestError, match=message.replace(".", r"\.")):
        client.messages.create(**params)

    batch = client.messages.batches.create(requests=[{"custom_id": "bad-1", "params": params}])
    result = results(client, batch.id)["bad-1"]
    assert result.type == "errored" and result.error.error.type == "invalid_request_error"
