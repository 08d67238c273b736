"""Deterministic, useful offline answers.

Given a validated request body, decide what "the model" says:
1. a refusal, when the user asks for something clearly harmful (weapons, malware…);
2. a tool call, when `tool_choice` forces one (input filled from the tool's input_schema), or when the
   user's words ask for one of the request's tools (tooluse.py); after tool results, words from them;
3. JSON, when the request asks for it (structured-output schema, `{` prefill, or instructions that
   mention JSON and keys) — classification keys filled by transcript heuristics, or a help-centre article
   drafted from the customers' questions of a knowledge gap (drafting.py);
4. a prose summary, when asked to summarise a conversation;
5. a support answer quoting the request's `search_result` / `document` blocks with citations enabled,
   as cited text blocks (see grounding.py), when the request has any;
6. otherwise a support answer grounded in the system prompt's reference documents (and the user's
   `<account_context>` when the question is about their plan, invoices or tickets), in the user's
   language.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .drafting import article_draft, is_draft_request
from .evaluation import customer_message, grades_json, is_customer_request, is_grader_request
from .grounding import citable_units, grounded_segments, question_of
from .language import ACCOUNT_LEAD_IN, CLOSING, GREETING, LEAD_IN, NOT_FOUND, REFUSAL, detect_language, words
from .prompt import instructions_of, system_text, text_of
from .retrieval import build_index, index_for_system, plain_prose, stem_terms
from .structured import (
    FieldSpec,
    classification_fields,
    fields_from_prompt,
    fields_from_schema,
    fill_fields,
    message_asks_for_json,
    prompt_asks_for_json,
)
from .tooluse import answer_from_results, chosen_tool
from .transcript import TranscriptSignals, transcript_from

_ACCOUNT_CONTEXT = re.compile(
    r"<(account_context|account|customer_context|customer_account)\b[^>]*>(.*?)</\1>", re.DOTALL | re.IGNORECASE
)
# Context an application puts into the user turn next to what the user typed.
_CONTEXT_BLOCK = re.compile(
    r"<(account_context|account|customer_context|customer_account|visitor_context|visitor|conversation_summary|"
    r"summary|history_summary|previous_summary|support_team_availability)\b[^>]*>.*?</\1>",
    re.DOTALL | re.IGNORECASE,
)
# The language an account or visitor context gives (`"language": "de"`): what a short message with no
# language of its own ("Hi", an order number) is answered in.
_CONTEXT_LANGUAGE = re.compile(
    r"<(account_context|visitor_context)\b[^>]*>.*?\"language\":\s*\"([a-z]{2})\".*?</\1>", re.DOTALL | re.IGNORECASE
)
_TRANSCRIPT_TAG = re.compile(
    r"<(transcript|conversation|chat|dialogue|messages)\b[^>]*>.*?</\1>", re.DOTALL | re.IGNORECASE
)
_SUMMARY_REQUEST = re.compile(
    r"\b(summari[sz]e|summari[sz]ing|summary of|write a (short |brief )?summary|condense)\b", re.IGNORECASE
)
# Summarising as the task, i.e. of a conversation, not "summarise the issue in one sentence when you escalate".
_SUMMARY_TASK = re.compile(
    r"\b(summari[sz]e|summari[sz]ing|summary of|summaries of|write a (short |brief )?summary|condense|compress)\b"
    r"[^.\n]{0,60}?\b(conversations?|transcripts?|chats?|dialogues?|threads?|exchanges?|discussions?|below|following)\b",
    re.IGNORECASE,
)
_CYBER_HARM = re.compile(
    r"\b(malware|ransomware|keylogger|botnet|ddos|exploit kit|steal (passwords|credentials)|phishing kit)\b",
    re.IGNORECASE,
)
_GENERAL_HARM = re.compile(
    r"\b(bomb|explosives?|nerve agent|bioweapon|chemical weapon|sarin|ricin|"
    r"(make|build|assemble) a (gun|weapon|firearm)|untraceable (gun|weapon))\b",
    re.IGNORECASE,
)
QUOTE_CHARS = 700  # help-center text quoted per answer (the best passage is always quoted whole)
ACCOUNT_HINTS = frozenset(
    [
        "plan",
        "tier",
        "invoice",
        "invoices",
        "bill",
        "billing",
        "ticket",
        "tickets",
        "subscription",
        "account",
        "order",
        "orders",
        "payment",
        "renew",
        "renewal",
        "balance",
        "status",
        "facture",
        "compte",
        "abonnement",
        "rechnung",
        "konto",
        "factura",
        "cuenta",
        "fattura",
        "fatura",
        "conta",
        "factuur",
    ]
)
GREETING_WORDS = frozenset(
    ["hi", "hello", "hey", "bonjour", "salut", "hallo", "hola", "ciao", "olá", "ola", "hoi", "goedendag"]
)


@dataclass(frozen=True)
class Answer:
    text: str
    stop_reason: str = "end_turn"  # end_turn | refusal | tool_use
    tool_use: dict[str, Any] | None = None  # {"name": ..., "input": {...}} when stop_reason == "tool_use"
    refusal_category: str | None = None
    # Text blocks with their citations, in order, when the answer cites the request's sources; `text` is
    # then their concatenation.
    segments: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()


def compose_answer(body: dict[str, Any], *, prose_instead_of_json: bool = False) -> Answer:
    messages = body["messages"]
    user_text = _last_user_text(messages)
    own_words = _own_words(user_text)
    system = system_text(body)
    instructions = _instructions(system)
    prefill = _prefill(messages)

    refusal = _refusal(own_words)
    if refusal is not None:
        return refusal
    forced_tool = _forced_tool(body)
    if forced_tool is not None:
        return _tool_call(forced_tool, user_text)
    chosen = chosen_tool(body, own_words)
    if chosen is not None:
        return Answer("", stop_reason="tool_use", tool_use=chosen)
    from_results = answer_from_results(messages)
    if from_results:
        return Answer(from_results)
    if is_customer_request(user_text):
        return Answer(customer_message(user_text))
    if _wants_json(body, instructions, _request_words(user_text), prefill):
        if prose_instead_of_json:
            return Answer(_continue_after_prefill(_prose_not_json(user_text), prefill))
        # The rubric is in the first turn; a follow-up after an invalid reply only asks to fix the format.
        graded = text_of(messages[0]["content"]) if messages[0]["role"] == "user" else ""
        if is_grader_request(graded):
            return Answer(_continue_after_prefill(grades_json(graded), prefill))
        if is_draft_request(user_text):
            schema = _output_schema(body)
            draft = article_draft(user_text, fields_from_schema(schema) if schema is not None else [])
            return Answer(_continue_after_prefill(json.dumps(draft, ensure_ascii=False), prefill))
        return Answer(_continue_after_prefill(_json_answer(body, instructions, user_text, messages), prefill))
    if _wants_summary(instructions, user_text):
        return Answer(_continue_after_prefill(_summary(user_text, messages), prefill))
    units = citable_units(messages)
    if units and not prefill:
        query = plain_prose(_own_words(question_of(messages)))
        segments = tuple(
            (text, tuple(citations))
            for text, citations in grounded_segments(units, query, default_language=_context_language(user_text))
        )
        return Answer("".join(text for text, _ in segments), segments=segments)
    return Answer(_continue_after_prefill(_support_answer(system, instructions, user_text), prefill))


def _own_words(user_text: str) -> str:
    """What the user wrote in the last turn: without the account context or an earlier-conversation
    summary the application put next to it (those are context, never the user's request)."""
    return _CONTEXT_BLOCK.sub(" ", user_text)


def _request_words(user_text: str) -> str:
    """The user's own words without any transcript they hand over: a transcript is data to work on."""
    return _TRANSCRIPT_TAG.sub(" ", _own_words(user_text))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return text_of(message["content"])
    return ""


def _prefill(messages: list[dict[str, Any]]) -> str:
    last = messages[-1]
    return text_of(last["content"]) if last["role"] == "assistant" else ""


def _continue_after_prefill(text: str, prefill: str) -> str:
    """With a prefill the response continues the assistant's text instead of repeating it."""
    if not prefill:
        return text
    if text.startswith(prefill):
        return text[len(prefill) :]
    stripped = prefill.strip()
    if stripped and text.startswith(stripped):
        return text[len(stripped) :]
    return text if prefill[-1].isspace() else " " + text


def _refusal(query: str) -> Answer | None:
    category = "cyber" if _CYBER_HARM.search(query) else "general_harms" if _GENERAL_HARM.search(query) else None
    if category is None:
        return None
    return Answer(REFUSAL[detect_language(query)], stop_reason="refusal", refusal_category=category)


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tool_choice = body.get("tool_choice") or {}
    tools = [tool for tool in body.get("tools") or [] if "input_schema" in tool]
    if tool_choice.get("type") == "tool":
        return next((tool for tool in tools if tool.get("name") == tool_choice.get("name")), None)
    if tool_choice.get("type") == "any" and tools:
        return tools[0]
    return None


def _tool_call(tool: dict[str, Any], user_text: str) -> Answer:
    signals = TranscriptSignals(transcript_from(user_text))
    tool_input = fill_fields(fields_from_schema(tool.get("input_schema") or {}), signals)
    return Answer("", stop_reason="tool_use", tool_use={"name": tool["name"], "input": tool_input})


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    for holder in (body.get("output_config") or {}, body):
        output_format = holder.get("format") if holder is not body else body.get("output_format")
        if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
            return output_format.get("schema") or {}
    return None


@dataclass(frozen=True)
class _Instructions:
    """What a system prompt asks for, worked out once per distinct system text."""

    text: str  # the system text without reference documents and few-shot examples
    asks_for_json: bool
    asks_for_summary: bool
    mentions_summary: bool
    mentions_classification: bool
    fields: tuple[FieldSpec, ...]
    account_context: str


@lru_cache(maxsize=256)
def _instructions(system: str) -> _Instructions:
    text = instructions_of(system)
    return _Instructions(
        text=text,
        asks_for_json=prompt_asks_for_json(text),
        asks_for_summary=_SUMMARY_TASK.search(text) is not None,
        mentions_summary=_SUMMARY_REQUEST.search(text) is not None,
        mentions_classification="classif" in text.lower(),
        fields=tuple(fields_from_prompt(text)),
        account_context="\n".join(body for _, body in _ACCOUNT_CONTEXT.findall(text)),
    )


def _wants_json(body: dict[str, Any], instructions: _Instructions, request: str, prefill: str) -> bool:
    if _output_schema(body) is not None or prefill.lstrip().startswith("{"):
        return True
    return instructions.asks_for_json or message_asks_for_json(request)


def _wants_summary(instructions: _Instructions, user_text: str) -> bool:
    """Asked to summarise a conversation: by the instructions, or by the user ("summarise this chat"),
    or by a user turn that hands over a transcript with "summarise"."""
    request = _request_words(user_text)
    if instructions.asks_for_summary or _SUMMARY_TASK.search(request):
        return True
    return bool(_SUMMARY_REQUEST.search(request)) and _TRANSCRIPT_TAG.search(user_text) is not None


def _json_answer(
    body: dict[str, Any], instructions: _Instructions, user_text: str, messages: list[dict[str, Any]]
) -> str:
    schema = _output_schema(body)
    request = _request_words(user_text)
    fields: list[FieldSpec]
    if schema is not None:
        fields = fields_from_schema(schema)
    else:
        fields = list(instructions.fields) or fields_from_prompt(request)
    if not fields:
        mentions_summary = instructions.mentions_summary or _SUMMARY_REQUEST.search(request) is not None
        classification = instructions.mentions_classification or "classif" in request.lower()
        summary_only = mentions_summary and not classification
        fields = [FieldSpec("summary")] if summary_only else classification_fields()
    signals = TranscriptSignals(_transcript_for(user_text, messages))
    return json.dumps(fill_fields(fields, signals), ensure_ascii=False)


def _prose_not_json(user_text: str) -> str:
    signals = TranscriptSignals(transcript_from(user_text))
    return f"Sure! Here is my assessment of the conversation. {signals.summary}"


def _transcript_for(user_text: str, messages: list[dict[str, Any]]) -> str:
    """The transcript to analyse: a tagged one in the last user turn, else the earlier turns."""
    tagged = transcript_from(user_text)
    if tagged != user_text.strip() or len(messages) <= 1:
        return tagged
    # One line per turn, in the turn's own words (the app's wrapper tags and context left out).
    lines = [
        f"{'Customer' if message['role'] == 'user' else 'Agent'}: {_turn_words(message)}" for message in messages[:-1]
    ]
    return "\n".join(lines)


def _turn_words(message: dict[str, Any]) -> str:
    return plain_prose(_own_words(text_of(message["content"])))


def _summary(user_text: str, messages: list[dict[str, Any]]) -> str:
    return TranscriptSignals(_transcript_for(user_text, messages)).summary


def _account_context(instructions: _Instructions, user_text: str) -> str:
    """The account context of this turn, else one given in the instructions (never a few-shot example's)."""
    matches = _ACCOUNT_CONTEXT.findall(user_text)
    return "\n".join(body for _, body in matches) if matches else instructions.account_context


def _context_language(user_text: str) -> str:
    """The language the turn's account or visitor context gives, if the emulator speaks it; else "en"."""
    hinted = _CONTEXT_LANGUAGE.search(user_text)
    language = hinted.group(2).lower() if hinted else "en"
    return language if language in GREETING else "en"


def _support_answer(system: str, instructions: _Instructions, user_text: str) -> str:
    query = plain_prose(_own_words(user_text))
    language = detect_language(query, default=_context_language(user_text))
    query_words = set(words(query))
    if not stem_terms(query) or (query_words & GREETING_WORDS and len(query_words) <= 3):
        return GREETING[language]

    parts: list[str] = []
    account_lines = _matching_account_lines(_account_context(instructions, user_text), query, query_words)
    if account_lines:
        parts.append(ACCOUNT_LEAD_IN[language] + " " + " ".join(_as_sentence(line) for line in account_lines))
    passages = _short_quote(index_for_system(system).best(query)) if system else []
    if passages:
        parts.append(LEAD_IN[language] + " " + " ".join(_as_sentence(passage) for passage in passages))
    if not parts:
        return NOT_FOUND[language]
    return " ".join([*parts, CLOSING[language]])


def _short_quote(passages: list[str]) -> list[str]:
    """The best passage, plus runners-up while the quote stays short: a real answer is ~150 words, and
    consumers' timeouts and pacing are tuned for answers of that length."""
    quoted: list[str] = []
    length = 0
    for passage in passages:
        if quoted and length + len(passage) > QUOTE_CHARS:
            break
        quoted.append(passage)
        length += len(passage)
    return quoted


def _matching_account_lines(context: str, query: str, query_words: set[str]) -> list[str]:
    if not context.strip() or not query_words & ACCOUNT_HINTS:
        return []
    lines = [plain_prose(line) for line in context.splitlines()]
    lines = [line for line in lines if line]
    return build_index(lines).best(query, limit=2)


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", ":")) else text + "."
