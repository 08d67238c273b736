"""The app's real requests: the seeded support-assistant and classifier prompts, assembled by the gateway.

The support system prompt holds a knowledge base that mentions JSON, few-shot examples with an
`<account_context>`, and rules that say "summarise the issue"; none of that may turn a chat question
into a JSON or summary answer. Intent comes from the instructions and the user's own words.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from apps.accounts import demo_content
from apps.llm.prompting import chat_messages, single_turn_messages, system_blocks
from apps.llm.types import ChatRequest, PromptParts, Turn

from .conftest import SONNET

ACCOUNT_CONTEXT = (
    "<account_context>\ncustomer: bob\nplan: pro\nbilling_status: past_due\nlanguage: en\ncompany: Bobco\n"
    "seats: 5\nrecent_invoices:\n- INV-2026-01766: 145.00 USD, open, issued 2026-11-15, due 2026-11-29\n"
    "open_tickets:\n- none\n</account_context>"
)
TRANSCRIPT = (
    "<transcript>\nCustomer: I was charged twice for my Pro plan this month, this is unacceptable.\n"
    "Assistant: I am sorry, I can see the duplicate payment and have passed it to billing.\n"
    "Customer: It still is not refunded, I want to talk to a manager.\n</transcript>"
)


def _parts(prefix: str, *, documents: bool) -> PromptParts:
    load = demo_content.load_text
    return PromptParts(
        slug=f"{prefix or 'support'}-prompt",
        version="1.0.0",
        version_id=1,
        persona=load(f"{prefix}persona"),
        business_rules=load(f"{prefix}business_rules" if not prefix else f"{prefix}rules"),
        output_format=load(f"{prefix}output_format"),
        reference_documents=tuple(demo_content.knowledge_base_documents()) if documents else (),
        few_shot_examples=load(f"{prefix}few_shot"),
        max_tokens=600,
    )


SUPPORT = _parts("", documents=True)
CLASSIFIER = _parts("classifier_", documents=False)


def chat(
    client: anthropic.Anthropic,
    question: str,
    *,
    account_context: str = "",
    history: tuple[Turn, ...] = (),
    summary: str = "",
) -> str:
    request = ChatRequest(
        prompt=SUPPORT,
        history=history,
        summary=summary,
        user_text=question,
        account_context=account_context,
        plan_tier="pro",
        language="en",
        conversation_id=None,
    )
    return _text(client, system=system_blocks(SUPPORT), messages=chat_messages(request))


def _text(client: anthropic.Anthropic, **params: Any) -> str:
    message = client.messages.create(model=SONNET, max_tokens=600, **params)
    assert message.stop_reason == "end_turn"
    return message.content[0].text


def assert_prose(answer: str) -> None:
    assert not answer.lstrip().startswith("{"), answer
    assert not answer.startswith("The customer contacted support"), answer


@pytest.mark.parametrize(
    ("question", "account_context", "expected"),
    [
        ("How do I reset my password?", "", "password"),
        ("Why is my invoice INV-2026-01766 still open?", ACCOUNT_CONTEXT, "INV-2026-01766: 145.00 USD, open"),
        ("What are the API rate limits?", "", "requests per minute"),
        ("How do I export all my workspace data?", "", "Export workspace"),
        ("Can I export my projects in JSON format?", "", "JSON"),
        ("Comment réinitialiser mon mot de passe ?", ACCOUNT_CONTEXT, "Voici"),
    ],
)
def test_chat_questions_get_grounded_prose(
    client: anthropic.Anthropic, question: str, account_context: str, expected: str
) -> None:
    answer = chat(client, question, account_context=account_context)
    assert_prose(answer)
    assert expected in answer


def test_few_shot_account_context_is_not_quoted_as_the_users(client: anthropic.Anthropic) -> None:
    answer = chat(client, "Which plan am I on and is my invoice paid?")
    assert_prose(answer)
    assert "INV-2026-01766" not in answer  # bob's invoice lives only in a few-shot example


def test_an_earlier_conversation_summary_does_not_make_the_answer_a_summary(client: anthropic.Anthropic) -> None:
    summary = "The customer asked to summarise their invoices; the assistant explained where invoices are listed."
    history = (
        Turn("user", "Where are my invoices?"),
        Turn("assistant", "Open Settings, then Billing, then Invoices."),
    )
    for turns in ((), history):  # the summary merged into the new turn, or first in a longer history
        answer = chat(client, "What are the API rate limits?", summary=summary, history=turns)
        assert_prose(answer)
        assert "requests per minute" in answer


def test_classifier_request_gets_the_keys_it_asks_for(client: anthropic.Anthropic) -> None:
    answer = _text(client, system=system_blocks(CLASSIFIER), messages=single_turn_messages(TRANSCRIPT))
    parsed = json.loads(answer)
    assert parsed == {
        "category": "billing",
        "resolved": False,
        "sentiment": "negative",
        "escalation_needed": True,
        "language": "en",
        "summary": parsed["summary"],
        "knowledge_gap": False,
        "gap_topic": "",
        "cx_score": 1,
    }


def test_classifier_marks_a_question_the_help_centre_did_not_answer(client: anthropic.Anthropic) -> None:
    transcript = (
        "<transcript>\nCustomer: Can I export my invoices straight into Xero?\n"
        "Assistant: I'm sorry, I couldn't find information about that in our help center.\n"
        "Customer: Ok.\n</transcript>"
    )
    parsed = json.loads(_text(client, system=system_blocks(CLASSIFIER), messages=single_turn_messages(transcript)))
    assert (parsed["knowledge_gap"], parsed["gap_topic"]) == (True, "export invoices xero")
    assert parsed["cx_score"] == 2


def test_a_request_to_summarise_the_conversation_gets_a_summary(client: anthropic.Anthropic) -> None:
    history = (
        Turn("user", "I cannot log in to my account."),
        Turn("assistant", "I have sent you a password reset link."),
        Turn("user", "That worked, thanks."),
        Turn("assistant", "Glad it is sorted."),
    )
    answer = chat(client, "Please summarise this conversation.", history=history)
    assert answer.startswith("The customer contacted support about an account issue.")
