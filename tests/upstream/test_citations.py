"""search_result and document blocks with citations, through the real SDK: shapes, streaming, caching."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types import CitationCharLocation, CitationsSearchResultLocation

from .conftest import SONNET, long_text


def search_result(title: str, source: str, *texts: str, cache: bool = False) -> dict:
    block = {
        "type": "search_result",
        "source": source,
        "title": title,
        "content": [{"type": "text", "text": text} for text in texts],
        "citations": {"enabled": True},
    }
    if cache:
        block["cache_control"] = {"type": "ephemeral"}
    return block


CARD_EN = search_result(
    "Update your credit card",
    "https://help.example.com/en/card",
    "To update your credit card, open Billing and choose Payment method.",
    "The new card is charged from the next invoice on.",
)
CARD_DE = search_result(
    "Kreditkarte aktualisieren",
    "https://help.example.com/de/karte",
    "Um Ihre Kreditkarte zu aktualisieren, öffnen Sie Abrechnung und wählen Sie Zahlungsmethode.",
)
EXPORT_EN = search_result(
    "Export your data", "https://help.example.com/en/export", "Settings then Data export produces a ZIP archive."
)


def ask(client: anthropic.Anthropic, question: str, *results: dict):
    return client.messages.create(
        model=SONNET,
        max_tokens=400,
        messages=[{"role": "user", "content": [*results, {"type": "text", "text": question}]}],
    )


def cited(message) -> list:
    return [citation for block in message.content if block.type == "text" for citation in block.citations or []]


def test_the_answer_cites_the_matching_search_result_in_the_sdk_types(client: anthropic.Anthropic) -> None:
    message = ask(client, "How do I update my credit card?", EXPORT_EN, CARD_EN)
    citations = cited(message)
    assert citations, message.content
    first = citations[0]
    assert isinstance(first, CitationsSearchResultLocation)
    assert first.search_result_index == 1  # EXPORT_EN is 0: counted in request order
    assert first.source == "https://help.example.com/en/card"
    assert first.title == "Update your credit card"
    assert first.end_block_index == first.start_block_index + 1
    assert first.cited_text == CARD_EN["content"][first.start_block_index]["text"]
    text = "".join(block.text for block in message.content)
    assert "Payment method" in text


def test_a_german_question_is_answered_from_the_german_article(client: anthropic.Anthropic) -> None:
    message = ask(client, "Wie kann ich meine Kreditkarte aktualisieren?", CARD_EN, CARD_DE)
    citations = cited(message)
    assert [c.source for c in citations] == ["https://help.example.com/de/karte"]
    assert "Hilfe-Center" in "".join(block.text for block in message.content)


def test_nothing_relevant_means_no_citations(client: anthropic.Anthropic) -> None:
    message = ask(client, "Can I bring my dog to the office?", EXPORT_EN)
    assert cited(message) == []


def test_streaming_sends_citations_delta_and_the_sdk_accumulates_them(client: anthropic.Anthropic) -> None:
    seen: list[str] = []
    with client.messages.stream(
        model=SONNET,
        max_tokens=400,
        messages=[{"role": "user", "content": [CARD_EN, {"type": "text", "text": "update credit card?"}]}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                seen.append(event.delta.type)
        final = stream.get_final_message()
    assert "citations_delta" in seen
    assert seen.index("citations_delta") > seen.index("text_delta")
    streamed = cited(final)
    assert {c.source for c in streamed} == {"https://help.example.com/en/card"}
    assert streamed == cited(ask(client, "update credit card?", CARD_EN))


def test_plain_text_documents_are_cited_by_character_range(client: anthropic.Anthropic) -> None:
    data = "Refunds are possible within 30 days. Shipping is free above 50 euros."
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": data},
        "title": "Policies",
        "citations": {"enabled": True},
    }
    message = ask(client, "How long do I have to get a refund?", document)
    (citation,) = cited(message)
    assert isinstance(citation, CitationCharLocation)
    assert citation.document_index == 0
    assert citation.document_title == "Policies"
    assert data[citation.start_char_index : citation.end_char_index] == citation.cited_text
    assert "30 days" in citation.cited_text


def test_search_results_count_and_cache_like_other_blocks(client: anthropic.Anthropic) -> None:
    big = search_result("Billing handbook", "kb://billing", long_text(1_500), cache=True)
    question = {"type": "text", "text": "billing team?"}
    first = client.messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": [big, question]}])
    second = client.messages.create(
        model=SONNET, max_tokens=50, messages=[{"role": "user", "content": [big, question]}]
    )
    assert first.usage.cache_creation_input_tokens > 1_500
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.input_tokens == first.usage.input_tokens
    counted = client.messages.count_tokens(model=SONNET, messages=[{"role": "user", "content": [big, question]}])
    usage = first.usage
    assert counted.input_tokens == usage.input_tokens + usage.cache_creation_input_tokens


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "search_result", "title": "t", "content": [{"type": "text", "text": "x"}]}, "source"),
        ({"type": "search_result", "source": "s", "title": "t", "content": []}, "at least one"),
        ({"type": "search_result", "source": "s", "title": "t", "content": [{"type": "image"}]}, "'text'"),
        ({"type": "document", "source": {"type": "text"}}, "data"),
    ],
)
def test_malformed_blocks_are_rejected_like_the_api(client: anthropic.Anthropic, block: dict, message: str) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        ask(client, "hello", block)


def test_citations_on_some_search_results_only_is_rejected(client: anthropic.Anthropic) -> None:
    plain = {**EXPORT_EN, "citations": {"enabled": False}}
    with pytest.raises(anthropic.BadRequestError, match="all or none"):
        ask(client, "hello", CARD_EN, plain)
