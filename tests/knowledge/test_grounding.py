"""Both grounding modes end to end: chat services → gateway → real SDK → emulator → stored citations."""

import asyncio

import pytest
from rest_framework.test import APIClient

from apps.chat import services as chat_services
from apps.chat.models import Message
from apps.knowledge.models import ArticleCitation
from apps.llm import gateway
from apps.llm.models import LLMCall
from apps.llm.types import Finished
from apps.prompts.services import prompt_seed_defaults
from tests.chat.factories import ConversationFactory, CustomerAccountFactory
from tests.conftest import received_requests

from .factories import make_article

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def env(llm_upstream):
    prompt_seed_defaults()
    account = CustomerAccountFactory()
    articles = {
        "card": make_article(
            title="Update your credit card",
            url="https://help.example.com/en/card",
            body="## Steps\n\nTo update your credit card, open Billing and choose Payment method.\n\n"
            "The new card is charged from the next invoice on.",
        ),
        "export": make_article(
            title="Export your data",
            url="https://help.example.com/en/export",
            body="Settings then Data export produces a ZIP archive of all your projects.",
        ),
    }
    return llm_upstream, account.user, articles


def answer(user, conversation, text: str):
    submission = chat_services.message_submit(conversation=conversation, text=text, client_id=None)
    request = chat_services.message_reply_request(user=user, submission=submission)

    async def run():
        async for event in gateway.chat_stream(request):
            if isinstance(event, Finished):
                return event.outcome
        raise AssertionError("no Finished event")

    outcome = asyncio.run(run())
    chat_services.message_reply_finish(
        reply=submission.reply,
        text=outcome.text,
        status=outcome.status,
        model=outcome.model,
        prompt_version=outcome.prompt_version,
        citations=outcome.citations,
    )
    submission.reply.refresh_from_db()
    return request, outcome, submission.reply


def test_a_small_base_rides_whole_in_the_cached_system_prefix(env, settings) -> None:
    upstream, user, _ = env
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 30_000
    conversation = ConversationFactory(user=user)
    request, outcome, _ = answer(user, conversation, "How do I update my credit card?")

    assert outcome.status == "complete"
    sent = received_requests(upstream, limit=1)[0]["body"]
    system = "".join(block["text"] for block in sent["system"])
    assert "open Billing and choose Payment method" in system
    assert "ZIP archive" in system
    assert not any(block["type"] == "search_result" for m in sent["messages"] for block in m["content"])
    snapshot_id = request.prompt.knowledge_snapshot_id
    assert snapshot_id is not None
    assert set(LLMCall.objects.values_list("knowledge_snapshot_id", flat=True)) == {snapshot_id}

    # A second question in another conversation reads the same prefix from the cache, byte for byte.
    _, second, _ = answer(user, ConversationFactory(user=user), "And how do I export my data?")
    assert second.cache_read_input_tokens > 1_000
    assert received_requests(upstream, limit=1)[0]["body"]["system"] == sent["system"]


def test_a_large_base_sends_the_best_articles_as_search_results_and_stores_citations(env, settings) -> None:
    upstream, user, articles = env
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 10
    conversation = ConversationFactory(user=user)
    request, outcome, reply = answer(user, conversation, "How do I update my credit card?")

    sent = received_requests(upstream, limit=1)[0]["body"]
    system = "".join(block["text"] for block in sent["system"])
    assert "Payment method" not in system
    results = [block for block in sent["messages"][-1]["content"] if block["type"] == "search_result"]
    assert results[0]["title"] == "Update your credit card"
    assert results[0]["source"] == "https://help.example.com/en/card"
    assert results[0]["citations"] == {"enabled": True}

    assert outcome.citations
    assert reply.citations[0]["url"] == "https://help.example.com/en/card"
    assert reply.citations[0]["article_id"] == articles["card"].id
    assert "Payment method" in reply.citations[0]["cited_text"]
    assert ArticleCitation.objects.filter(article=articles["card"], message_id=reply.id).count() == 1
    assert LLMCall.objects.get(message_id=reply.id).knowledge_snapshot_id == request.prompt.knowledge_snapshot_id

    client = APIClient()
    client.force_authenticate(user)
    detail = client.get(f"/api/conversations/{conversation.id}/").json()
    stored = next(m for m in detail["messages"] if m["id"] == reply.id)
    assert stored["citations"][0]["title"] == "Update your credit card"

    assert client.post(f"/api/messages/{reply.id}/feedback/", {"rating": "up"}, format="json").status_code in (200, 201)
    assert ArticleCitation.objects.get(message_id=reply.id).rating == "up"


def test_a_new_snapshot_is_used_by_the_next_answer(env, settings) -> None:
    upstream, user, articles = env
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 30_000
    conversation = ConversationFactory(user=user)
    first, _, _ = answer(user, conversation, "credit card?")
    from apps.knowledge import services

    services.article_update(article=articles["export"], body="Exports are now CSV files.")
    second, _, _ = answer(user, conversation, "export?")
    assert second.prompt.knowledge_snapshot_id != first.prompt.knowledge_snapshot_id
    system = "".join(block["text"] for block in received_requests(upstream, limit=1)[0]["body"]["system"])
    assert "CSV files" in system and "ZIP archive" not in system
    assert Message.objects.filter(conversation=conversation, role="assistant").count() == 2


def test_a_small_base_with_prefix_citations_is_cited_from_the_cached_prefix(env, settings) -> None:
    upstream, user, articles = env
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 30_000
    settings.KNOWLEDGE_PREFIX_CITATIONS = True
    conversation = ConversationFactory(user=user)
    request, outcome, reply = answer(user, conversation, "How do I update my credit card?")

    sent = received_requests(upstream, limit=1)[0]["body"]
    system = "".join(block["text"] for block in sent["system"])
    assert "Payment method" not in system and "<documents>" not in system
    first_turn = sent["messages"][0]["content"]
    results = [block for block in first_turn if block["type"] == "search_result"]
    # The whole snapshot, in its fixed order, citable, with the prefix's breakpoint on the last result.
    assert [r["title"] for r in results] == ["Update your credit card", "Export your data"]
    assert all(r["citations"] == {"enabled": True} for r in results)
    assert results[-1]["cache_control"] == {"type": "ephemeral"} and "cache_control" not in results[0]
    assert first_turn[: len(results)] == results  # ahead of everything conversation-specific
    breakpoints = sum("cache_control" in b for b in sent["system"]) + sum(
        "cache_control" in b for m in sent["messages"] for b in m["content"]
    )
    assert breakpoints <= 4

    assert outcome.citations and reply.citations[0]["article_id"] == articles["card"].id
    assert ArticleCitation.objects.filter(article=articles["card"], message_id=reply.id).exists()
    assert request.prompt.knowledge_snapshot_id is not None

    # Another conversation's question reads the same prefix (system and the results) from the cache.
    _, second, _ = answer(user, ConversationFactory(user=user), "And how do I export my data?")
    # (everything the first request wrote: the system and the search results, none of it per conversation)
    assert second.cache_read_input_tokens == outcome.cache_creation_input_tokens > 0
    again = received_requests(upstream, limit=1)[0]["body"]
    assert again["messages"][0]["content"][: len(results)] == results
