"""Keyword heuristics over a support transcript: what classification and summary requests get back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from .language import NOT_FOUND, STOPWORDS, detect_language, words

_TRANSCRIPT_TAG = re.compile(
    r"<(transcript|conversation|chat|dialogue|messages)\b[^>]*>(.*?)</\1>", re.DOTALL | re.IGNORECASE
)
_CUSTOMER_LINE = re.compile(r"^\s*(customer|user|client|human)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_AGENT_LINE = re.compile(r"^\s*(agent|assistant|bot|support|ai)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)

CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "billing": (
        "invoice",
        "refund",
        "charge",
        "charged",
        "billing",
        "bill",
        "payment",
        "pay",
        "price",
        "pricing",
        "subscription",
        "plan",
        "card",
        "receipt",
        "upgrade",
        "downgrade",
        "discount",
        "vat",
        "tax",
        "facture",
        "rechnung",
        "factura",
        "fattura",
        "fatura",
        "factuur",
    ),
    "account": (
        "password",
        "login",
        "log",
        "sign",
        "account",
        "email",
        "username",
        "2fa",
        "locked",
        "profile",
        "delete",
        "verification",
        "verify",
        "reset",
        "mot",
        "passe",
        "passwort",
        "konto",
        "contraseña",
    ),
    "technical": (
        "error",
        "bug",
        "crash",
        "crashes",
        "broken",
        "api",
        "install",
        "sync",
        "slow",
        "timeout",
        "integration",
        "app",
        "load",
        "loading",
        "500",
        "404",
        "webhook",
        "export",
        "import",
        "fails",
        "failing",
        "working",
    ),
}
POSITIVE_WORDS = frozenset(
    [
        "thanks",
        "thank",
        "great",
        "perfect",
        "awesome",
        "helpful",
        "love",
        "appreciate",
        "excellent",
        "wonderful",
        "merci",
        "danke",
        "gracias",
        "grazie",
        "obrigado",
        "bedankt",
    ]
)
NEGATIVE_WORDS = frozenset(
    [
        "angry",
        "frustrated",
        "terrible",
        "awful",
        "unacceptable",
        "ridiculous",
        "worst",
        "annoyed",
        "disappointed",
        "hate",
        "useless",
        "furious",
        "horrible",
        "bad",
        "scam",
        "waste",
    ]
)
RESOLVED_PHRASES = (
    "that worked",
    "it worked",
    "works now",
    "working now",
    "resolved",
    "fixed",
    "solved",
    "that helps",
    "that helped",
    "all set",
    "sorted",
    "problem solved",
)
UNRESOLVED_PHRASES = (
    "still not",
    "still doesn't",
    "still does not",
    "doesn't work",
    "does not work",
    "not resolved",
    "unresolved",
    "didn't help",
    "did not help",
    "no solution",
    "still broken",
    "still can't",
    "still cannot",
)
ESCALATION_WORDS = (
    "human",
    "manager",
    "supervisor",
    "escalate",
    "escalation",
    "lawyer",
    "legal",
    "complaint",
    "real person",
    "speak to someone",
    "chargeback",
)


# How an answer says the help centre had nothing: the emulator's own "not found" answers (their first
# sentence, every language) and the usual English wordings of a real model.
NOT_ANSWERED_PHRASES = (
    *sorted({text.split(".")[0].split("?")[0].lower() for text in NOT_FOUND.values()}),
    "couldn't find",
    "could not find",
    "no information about",
    "don't have information",
    "do not have information",
    "not covered in our help",
)
_TOPIC_SKIP = frozenset(
    "can could would will should do does did how what when where why which who is are am was were my i me we our "
    "you your it its this that there a an the to of in on for with into from about please hi hello hey just "
    "straight possible way".split()
)
GAP_TOPIC_WORDS = 6


def transcript_from(text: str) -> str:
    """The transcript inside a known wrapper tag, else the whole text."""
    match = _TRANSCRIPT_TAG.search(text)
    return match.group(2).strip() if match else text.strip()


@dataclass(frozen=True)
class TranscriptSignals:
    transcript: str

    @cached_property
    def customer_text(self) -> str:
        lines = [match.group(2) for match in _CUSTOMER_LINE.finditer(self.transcript)]
        return "\n".join(lines) if lines else self.transcript

    @cached_property
    def agent_text(self) -> str:
        return "\n".join(match.group(2) for match in _AGENT_LINE.finditer(self.transcript))

    @cached_property
    def _lower(self) -> str:
        return self.transcript.lower()

    @cached_property
    def category(self) -> str:
        customer_words = words(self.customer_text)
        scores = {
            category: sum(customer_words.count(keyword) for keyword in keywords)
            for category, keywords in CATEGORY_KEYWORDS.items()
        }
        best = max(scores, key=lambda category: scores[category])
        return best if scores[best] > 0 else "other"

    @cached_property
    def resolved(self) -> bool:
        customer = self.customer_text.lower()
        positive = sum(customer.count(phrase) for phrase in RESOLVED_PHRASES)
        negative = sum(customer.count(phrase) for phrase in UNRESOLVED_PHRASES)
        return positive > negative

    @cached_property
    def sentiment(self) -> str:
        customer_words = words(self.customer_text)
        positive = sum(word in POSITIVE_WORDS for word in customer_words)
        negative = sum(word in NEGATIVE_WORDS for word in customer_words)
        negative += sum(self.customer_text.lower().count(phrase) for phrase in UNRESOLVED_PHRASES)
        if negative > positive:
            return "negative"
        if positive > negative:
            return "positive"
        return "neutral"

    @cached_property
    def escalation_needed(self) -> bool:
        asked_for_escalation = any(phrase in self.customer_text.lower() for phrase in ESCALATION_WORDS)
        return asked_for_escalation or (not self.resolved and self.sentiment == "negative")

    @cached_property
    def knowledge_gap(self) -> bool:
        """The assistant said the help centre had nothing on the customer's question."""
        agent = self.agent_text.lower()
        return any(phrase in agent for phrase in NOT_ANSWERED_PHRASES)

    @cached_property
    def gap_topic(self) -> str:
        """The missing topic: the content words of the customer's first question, in order (so the same
        question always names the same topic, and the report can group by it)."""
        if not self.knowledge_gap:
            return ""
        skip = _TOPIC_SKIP | STOPWORDS.get(self.language, frozenset())
        content = [word for word in words(self.first_customer_sentence) if word not in skip and not word.isdigit()]
        return " ".join(content[:GAP_TOPIC_WORDS]) or "unspecified"

    @cached_property
    def cx_score(self) -> int:
        """1 (answered nothing, customer angry) .. 5 (resolved, customer pleased)."""
        if self.resolved:
            return 5 if self.sentiment == "positive" else 4
        if self.sentiment == "positive":  # thanked the assistant without saying it is solved
            return 4
        if self.sentiment == "negative":
            return 1
        if self.knowledge_gap or self.escalation_needed:
            return 2
        return 3

    @cached_property
    def language(self) -> str:
        return detect_language(self.customer_text)

    @cached_property
    def first_customer_sentence(self) -> str:
        first_line = next((line for line in self.customer_text.splitlines() if line.strip()), "")
        text = " ".join(first_line.split())
        sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0] if text else ""
        return sentence if len(sentence) <= 160 else sentence[:157].rstrip() + "..."

    @cached_property
    def summary(self) -> str:
        topic = {
            "billing": "a billing question",
            "account": "an account issue",
            "technical": "a technical problem",
            "other": "a general question",
        }[self.category]
        outcome = "The issue was resolved." if self.resolved else "The issue was not confirmed as resolved."
        opening = f' They wrote: "{self.first_customer_sentence}"' if self.first_customer_sentence else ""
        escalation = " The customer should be followed up by a human agent." if self.escalation_needed else ""
        return f"The customer contacted support about {topic}.{opening} {outcome}{escalation}".strip()

    @cached_property
    def keywords(self) -> list[str]:
        seen: list[str] = []
        for keywords in CATEGORY_KEYWORDS.values():
            for keyword in keywords:
                if keyword in words(self.customer_text) and keyword not in seen:
                    seen.append(keyword)
        return seen[:5]
