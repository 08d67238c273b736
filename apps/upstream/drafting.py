"""Article drafts: the answer to "write a help-centre article for these unanswered questions".

A request is recognised by its user turn carrying `<customer_questions>` (one `<question>` per conversation,
inside a `<gap topic="…">`) while the request asks for JSON (normally a structured-output schema). The
draft is deterministic: the topic as title, the language most questions are in, and a Markdown body that
lists what was asked, leaves the answer for the reviewer to confirm, and links the `<existing_articles>`
instead of repeating them.
"""

from __future__ import annotations

import re
from collections import Counter
from html import unescape
from typing import Any

from .language import detect_language
from .structured import FieldSpec

_GAP = re.compile(r"<gap\b([^>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'([a-z_]+)="([^"]*)"')
_QUESTION = re.compile(r"<question\b([^>]*)>(.*?)</question>", re.DOTALL | re.IGNORECASE)
_ARTICLE = re.compile(r"<article\b([^>]*)>", re.IGNORECASE)
QUESTIONS_LISTED = 10
QUESTION_CHARS = 200

HEADINGS: dict[str, tuple[str, str, str, str]] = {
    # intro ({topic}), "what customers asked", "answer", "related articles"
    "en": ("Customers asked about {topic}.", "What customers asked", "Answer", "Related articles"),
    "de": ("Kundinnen und Kunden haben nach {topic} gefragt.", "Was gefragt wurde", "Antwort", "Verwandte Artikel"),
    "fr": ("Des clients ont posé des questions sur {topic}.", "Questions posées", "Réponse", "Articles liés"),
    "es": ("Los clientes preguntaron por {topic}.", "Lo que preguntaron", "Respuesta", "Artículos relacionados"),
    "it": ("I clienti hanno chiesto di {topic}.", "Cosa hanno chiesto", "Risposta", "Articoli correlati"),
    "pt": ("Os clientes perguntaram sobre {topic}.", "O que perguntaram", "Resposta", "Artigos relacionados"),
    "nl": ("Klanten vroegen naar {topic}.", "Wat klanten vroegen", "Antwoord", "Gerelateerde artikelen"),
}
TO_CONFIRM = "[[TO CONFIRM: the answer to the questions above]]"


def is_draft_request(user_text: str) -> bool:
    return "<customer_questions>" in user_text and _GAP.search(user_text) is not None


def _attributes(raw: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in _ATTRIBUTE.findall(raw)}


def article_draft(user_text: str, fields: list[FieldSpec]) -> dict[str, Any]:
    """The draft as the JSON object asked for: `title`, `body`, `language` (other requested keys left empty)."""
    gap = _GAP.search(user_text)
    topic = _attributes(gap.group(1)).get("topic", "").strip() if gap else ""
    questions = [(_attributes(attrs), " ".join(unescape(text).split())) for attrs, text in _QUESTION.findall(user_text)]
    questions = [(attrs, text) for attrs, text in questions if text]
    languages = Counter(attrs.get("language") or detect_language(text) for attrs, text in questions)
    language = min(languages, key=lambda code: (-languages[code], code)) if languages else "en"
    intro, asked_heading, answer_heading, related_heading = HEADINGS.get(language, HEADINGS["en"])
    asked = list(dict.fromkeys(_short(text) for _, text in questions))[:QUESTIONS_LISTED]
    related = [_attributes(attrs) for attrs in _ARTICLE.findall(user_text)]
    lines = [intro.format(topic=topic or "this"), "", f"## {asked_heading}", ""]
    lines += [f"- {question}" for question in asked] or ["-"]
    lines += ["", f"## {answer_heading}", "", TO_CONFIRM]
    links = [f"- [{item['title']}]({item['url']})" if item.get("url") else f"- {item['title']}" for item in related]
    if links:
        lines += ["", f"## {related_heading}", "", *links]
    values = {
        "title": (topic[:1].upper() + topic[1:]) if topic else "Unanswered questions",
        "body": "\n".join(lines) + "\n",
        "language": language,
    }
    requested = [field.name for field in fields] or list(values)
    return {name: values.get(name, "") for name in requested}


def _short(text: str) -> str:
    return text if len(text) <= QUESTION_CHARS else text[: QUESTION_CHARS - 1].rstrip() + "…"
