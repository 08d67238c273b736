"""Test data for the LLM gateway: prompt parts, chat requests and routing rules."""

import factory
from factory.django import DjangoModelFactory

from apps.llm.models import RoutingRule
from apps.llm.types import ChatRequest, PromptParts, ReplyRef, Turn

# About 5,000 tokens of stable reference text: above every model's minimum cacheable prefix.
_DOC_PARAGRAPH = (
    "Acme Cloud invoices are issued on the first day of each billing period and are payable within "
    "fourteen days. Refunds for annual plans are prorated by unused whole months. "
)


class PromptPartsFactory(factory.Factory):
    class Meta:
        model = PromptParts

    slug = "support-assistant"
    version = "2.1.0"
    version_id = 7
    persona = "You are Acme Corp's friendly, precise customer-support assistant."
    business_rules = "Only discuss Acme products. Never promise refunds beyond the published policy."
    output_format = "Answer in short paragraphs. Use the customer's language."
    reference_documents = factory.LazyFunction(
        lambda: (
            ("Billing & invoices", _DOC_PARAGRAPH * 120),
            ("Refunds", _DOC_PARAGRAPH * 110),
        )
    )
    few_shot_examples = "<example><user>Hi</user><assistant>Hello! How can I help?</assistant></example>"
    max_tokens = 512
    model_tier = ""


class ChatRequestFactory(factory.Factory):
    class Meta:
        model = ChatRequest

    prompt = factory.SubFactory(PromptPartsFactory)
    history = ()
    summary = ""
    user_text = "How do I download my last invoice?"
    account_context = "<account_context>\ncustomer: alice\nplan: pro\n</account_context>"
    plan_tier = "pro"
    language = "en"
    conversation_id = factory.Sequence(lambda n: f"00000000-0000-0000-0000-{n:012d}")
    reply = factory.Sequence(lambda n: ReplyRef(n + 1))
    model_override = ""


def history_of(exchanges: int, *, words: int = 12) -> tuple[Turn, ...]:
    """`exchanges` user/assistant pairs, oldest first."""
    turns: list[Turn] = []
    for index in range(exchanges):
        turns.append(Turn("user", f"Question {index}: " + "invoice question " * words))
        turns.append(Turn("assistant", f"Answer {index}: " + "here is how invoices work " * words))
    return tuple(turns)


class RoutingRuleFactory(DjangoModelFactory):
    class Meta:
        model = RoutingRule

    name = factory.Sequence(lambda n: f"rule {n}")
    enabled = True
    priority = 1
    task_type = ""
    plan_tier = ""
    model_tier = "sonnet"
