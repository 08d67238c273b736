"""Answers grounded in `search_result` and `document` blocks with citations enabled, cited as the API does.

The API numbers what it can cite in request order: `search_result_index` counts search results across
all messages (tool results included), `document_index` counts documents. The citable unit of a search
result or a content document is one of its text blocks; a plain-text document is cited by character
range (the API splits it into sentences). The shapes are the SDK's `CitationsSearchResultLocation`,
`CitationCharLocation` and `CitationContentBlockLocation`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .language import CLOSING, LEAD_IN, NOT_FOUND, detect_language
from .prompt import content_blocks
from .retrieval import build_index, plain_prose

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
QUOTE_CHARS = 700


@dataclass(frozen=True)
class Citable:
    text: str  # what a citation's cited_text holds
    title: str
    citation: dict[str, Any]  # the citation minus nothing: ready for a text block's `citations`


def citable_units(messages: list[dict[str, Any]]) -> list[Citable]:
    """Every unit the request lets the answer cite, in request order."""
    units: list[Citable] = []
    counters = {"search_result": 0, "document": 0}
    for message in messages:
        if message.get("role") != "user":
            continue
        for block in content_blocks(message["content"]):
            _collect(block, units, counters)
    return units


def _collect(block: dict[str, Any], units: list[Citable], counters: dict[str, int]) -> None:
    block_type = block.get("type")
    if block_type == "tool_result" and isinstance(block.get("content"), list):
        for inner in block["content"]:
            _collect(inner, units, counters)
        return
    if block_type not in counters:
        return
    index = counters[block_type]
    counters[block_type] += 1
    if not (block.get("citations") or {}).get("enabled"):
        return
    if block_type == "search_result":
        units.extend(_search_result_units(block, index))
    else:
        units.extend(_document_units(block, index))


def _search_result_units(block: dict[str, Any], index: int) -> list[Citable]:
    title = block.get("title", "")
    units = []
    for position, inner in enumerate(block.get("content") or []):
        text = inner.get("text", "")
        citation = {
            "type": "search_result_location",
            "cited_text": text,
            "source": block.get("source", ""),
            "title": title,
            "search_result_index": index,
            "start_block_index": position,
            "end_block_index": position + 1,
        }
        units.append(Citable(text, title, citation))
    return units


def _document_units(block: dict[str, Any], index: int) -> list[Citable]:
    source = block.get("source") or {}
    title = block.get("title") or None
    units: list[Citable] = []
    if source.get("type") == "text":
        data = source.get("data", "")
        for match in _SENTENCE.finditer(data):
            if not match.group().strip():
                continue
            citation = {
                "type": "char_location",
                "cited_text": match.group(),
                "document_index": index,
                "document_title": title,
                "start_char_index": match.start(),
                "end_char_index": match.end(),
                "file_id": None,
            }
            units.append(Citable(match.group(), title or "", citation))
    elif source.get("type") == "content":
        for position, inner in enumerate(content_blocks(source.get("content", []))):
            if inner.get("type") != "text":
                continue
            citation = {
                "type": "content_block_location",
                "cited_text": inner.get("text", ""),
                "document_index": index,
                "document_title": title,
                "start_block_index": position,
                "end_block_index": position + 1,
            }
            units.append(Citable(inner.get("text", ""), title or "", citation))
    return units


def question_of(messages: list[dict[str, Any]]) -> str:
    """The text blocks of the last user turn: the question, without the material sent with it."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return "\n".join(
                block.get("text", "") for block in content_blocks(message["content"]) if block.get("type") == "text"
            )
    return ""


def grounded_segments(
    units: list[Citable], query: str, *, default_language: str = "en"
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The answer as (text, citations) segments: a lead-in, the cited passages, a closing line.

    Units in the question's language are preferred: a German question is answered from the German
    article even when an English one matches the same words. `default_language`: for a question with no
    language of its own (the one its account or visitor context gives).
    """
    language = detect_language(query, default=default_language)
    chosen = _best_units([u for u in units if detect_language(u.text, default="") == language], query)
    if not chosen:
        chosen = _best_units(units, query)
    if not chosen:
        return [(NOT_FOUND[language], [])]
    segments: list[tuple[str, list[dict[str, Any]]]] = [(LEAD_IN[language] + " ", [])]
    for position, unit in enumerate(chosen):
        separator = " " if position < len(chosen) - 1 else ""
        segments.append((plain_prose(unit.text) + separator, [unit.citation]))
    segments.append((" " + CLOSING[language], []))
    return segments


def _best_units(units: list[Citable], query: str) -> list[Citable]:
    if not units:
        return []
    index = build_index([plain_prose(u.text) for u in units], [u.title for u in units])
    best = index.best(query, limit=3)
    by_text: dict[str, Citable] = {}
    for unit in units:
        by_text.setdefault(plain_prose(unit.text), unit)
    chosen: list[Citable] = []
    length = 0
    for passage in best:
        if chosen and length + len(passage) > QUOTE_CHARS:
            break
        chosen.append(by_text[passage])
        length += len(passage)
    return chosen
