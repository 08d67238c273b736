"""Message Batches through the SDK: lifecycle, result types, cancel, pagination, validation."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from apps.upstream.clock import ManualClock
from apps.upstream.testing import RunningUpstream

from .conftest import HAIKU, SONNET

SYSTEM = "<document>Invoices are emailed on the first day of each month and can be downloaded from Billing.</document>"


def batch_request(custom_id: str, question: str = "Where is my invoice?", **params: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": HAIKU,
            "max_tokens": 200,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": question}],
            **params,
        },
    }


def manual_clock(upstream: RunningUpstream) -> ManualClock:
    clock = upstream.config.clock
    assert isinstance(clock, ManualClock)
    return clock


def results_by_id(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {line.custom_id: line.result for line in client.messages.batches.results(batch_id)}


def test_batch_lifecycle_from_in_progress_to_ended(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"batch_processing_seconds": 10})
    batch = client.messages.batches.create(requests=[batch_request(f"req-{index}") for index in range(4)])

    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None and batch.ended_at is None
    assert batch.request_counts.processing == 4 and batch.request_counts.succeeded == 0
    assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600

    manual_clock(upstream).advance(5)
    halfway = client.messages.batches.retrieve(batch.id)
    assert halfway.processing_status == "in_progress" and halfway.request_counts.processing == 4

    manual_clock(upstream).advance(5)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.succeeded == 4 and ended.request_counts.processing == 0
    assert ended.results_url == f"{upstream.base_url}/v1/messages/batches/{batch.id}/results"

    results = results_by_id(client, batch.id)
    assert set(results) == {f"req-{index}" for index in range(4)}
    message = results["req-2"].message
    assert "first day of each month" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.service_tier == "batch"


def test_results_are_out_of_order_and_matched_by_custom_id(client: anthropic.Anthropic) -> None:
    ids = [f"item_{index:02d}" for index in range(30)]
    batch = client.messages.batches.create(requests=[batch_request(custom_id) for custom_id in ids])
    streamed = [line.custom_id for line in client.messages.batches.results(batch.id)]
    assert sorted(streamed) == ids and streamed != ids


def test_results_endpoint_streams_jsonl(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    batch = client.messages.batches.create(requests=[batch_request("a"), batch_request("b")])
    url = client.messages.batches.retrieve(batch.id).results_url
    assert url is not None
    response = httpx.get(url, headers={"x-api-key": "test", "anthropic-version": "2023-06-01"})
    assert response.headers["content-type"].startswith("application/x-jsonl")
    assert len(response.text.strip().splitlines()) == 2


def test_error_and_expire_rates_and_invalid_params(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"batch_error_rate": 0.3, "batch_expire_rate": 0.3})
    requests = [batch_request(f"r{index}") for index in range(40)]
    requests.append(batch_request("unknown-model", model="claude-nope"))
    batch = client.messages.batches.create(requests=requests)
    counts = client.messages.batches.retrieve(batch.id).request_counts
    results = results_by_id(client, batch.id)

    types = [result.type for result in results.values()]
    assert counts.succeeded == types.count("succeeded") > 0
    assert counts.errored == types.count("errored") > 1
    assert counts.expired == types.count("expired") > 0
    assert counts.succeeded + counts.errored + counts.expired == 41
    unknown = results["unknown-model"]
    if unknown.type == "errored":  # unless the expire draw picked it first
        assert unknown.error.error.type in ("not_found_error", "api_error")


def test_cancel_marks_unprocessed_requests_canceled(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"batch_processing_seconds": 10})
    batch = client.messages.batches.create(requests=[batch_request(f"c{index}") for index in range(10)])
    manual_clock(upstream).advance(3)

    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None

    manual_clock(upstream).advance(1)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (3, 7)
    assert [result.type for result in results_by_id(client, batch.id).values()].count("canceled") == 7


def test_list_pagination_newest_first(client: anthropic.Anthropic) -> None:
    created = [client.messages.batches.create(requests=[batch_request("only")]).id for _ in range(5)]
    first_page = client.messages.batches.list(limit=2)
    assert [batch.id for batch in first_page.data] == created[::-1][:2]
    assert first_page.has_more and first_page.first_id == created[4] and first_page.last_id == created[3]
    assert [batch.id for batch in client.messages.batches.list(limit=2)] == created[::-1]  # auto-paging
    before = client.messages.batches.list(limit=2, before_id=created[1])
    assert [batch.id for batch in before.data] == [created[3], created[2]]


def test_delete_only_after_the_batch_ended(client: anthropic.Anthropic, upstream: RunningUpstream) -> None:
    upstream.control.set_faults({"batch_processing_seconds": 10})
    batch = client.messages.batches.create(requests=[batch_request("x")])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)
    manual_clock(upstream).advance(10)
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([batch_request("has space")], "custom_id"),
        ([batch_request("x" * 65)], "custom_id"),
        ([batch_request("dup"), batch_request("dup")], "Duplicate custom_id"),
        ([batch_request("s", stream=True)], "stream: Streaming is not supported"),
        ([batch_request("warm", max_tokens=0)], "max_tokens: Input should be greater than or equal to 1"),
        ([], "at least 1 item"),
        ([{"custom_id": "p", "params": {"model": SONNET, "messages": []}}], "max_tokens: Field required"),
    ],
)
def test_invalid_batches_are_rejected(client: anthropic.Anthropic, requests: list[Any], message: str) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        client.messages.batches.create(requests=requests)


def test_stream_false_in_batch_params_is_accepted(client: anthropic.Anthropic) -> None:
    """The SDK types batch params as non-streaming (`stream: Literal[False]`); the real API accepts false."""
    batch = client.messages.batches.create(requests=[batch_request("explicit", stream=False)])
    results = list(client.messages.batches.results(batch.id))
    assert [(r.custom_id, r.result.type) for r in results] == [("explicit", "succeeded")]
    assert results[0].result.message.content[0].text


def test_many_requests_stay_fast(client: anthropic.Anthropic) -> None:
    requests = [batch_request(f"bulk-{index}", question=f"Where is invoice number {index}?") for index in range(2_000)]
    batch = client.messages.batches.create(requests=requests)
    assert client.messages.batches.retrieve(batch.id).request_counts.succeeded == 2_000
    assert sum(1 for _ in client.messages.batches.results(batch.id)) == 2_000
