"""Prompt assembly: system blocks in a fixed, byte-stable order, then the conversation.

Prompt caching matches prefixes byte for byte, so everything before the cache breakpoints must be a
pure function of the prompt version: no timestamps, no user data, no dict-order surprises. The
per-user account context goes into the *new* user turn, after every breakpoint.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from typing import Any

from apps.accounts.selectors import neutralise_tags
from apps.llm.types import ChatRequest, KnowledgeSource, PromptParts, ToolSpec, Turn

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
CACHE_TTLS = ("5m", "1h")
USER_MESSAGE_TAG = "user_message"
SUMMARY_TAG = "conversation_summary"
# Some Anthropic-compatible endpoints (Bedrock) refuse a conversation that opens with the assistant;
# a history that opens with an assistant greeting gets this neutral opener so the prefix stays stable.
CONVERSATION_OPENER = "(The conversation begins.)"


def cache_control(ttl: str = "5m") -> dict[str, str]:
    """A breakpoint in the wire format: `{"type": "ephemeral"}` is the API's 5-minute default (sent as
    before, so existing cached prefixes keep their bytes); `"1h"` adds `"ttl": "1h"`."""
    if ttl not in CACHE_TTLS:
        raise ValueError(f"cache TTL must be one of {CACHE_TTLS}, not {ttl!r}")
    return dict(EPHEMERAL) if ttl == "5m" else {**EPHEMERAL, "ttl": ttl}


def _text_block(text: str, *, cache_ttl: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cache_ttl is not None:
        block["cache_control"] = cache_control(cache_ttl)
    return block


def documents_text(documents: tuple[tuple[str, str], ...]) -> str:
    """Reference documents, each in a titled `<document>` inside one `<documents>` element."""
    parts = [
        f'<document title="{escape(title, quote=True)}">\n{body.strip()}\n</document>' for title, body in documents
    ]
    return "<documents>\n" + "\n".join(parts) + "\n</documents>"


# Assembled system blocks of published versions (PromptParts.immutable), keyed by the parts themselves:
# the ~60 KB documents text was rebuilt (joined, stripped, escaped) two or three times per answer, and
# encoding it as JSON cost ~0.2 ms of event-loop CPU before every streamed request was sent.
# Bounded: a process serves a handful of versions at a time.
_SYSTEM_BLOCKS_MAX = 32


@dataclass
class _AssembledSystem:
    blocks: tuple[dict[str, Any], ...]
    encoded: str | None = None  # `blocks` as JSON, made on first use


_system_blocks_cache: OrderedDict[PromptParts, _AssembledSystem] = OrderedDict()
_system_blocks_lock = threading.Lock()


def json_compact(value: Any) -> str:
    """The JSON of our request bodies: UTF-8 text as is, no spaces."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _assembled_system(parts: PromptParts) -> _AssembledSystem:
    if not parts.immutable:
        return _AssembledSystem(tuple(_assemble_system_blocks(parts)))
    with _system_blocks_lock:
        cached = _system_blocks_cache.get(parts)
        if cached is not None:
            _system_blocks_cache.move_to_end(parts)
            return cached
    assembled = _AssembledSystem(tuple(_assemble_system_blocks(parts)))
    with _system_blocks_lock:
        assembled = _system_blocks_cache.setdefault(parts, assembled)
        while len(_system_blocks_cache) > _SYSTEM_BLOCKS_MAX:
            _system_blocks_cache.popitem(last=False)
    return assembled


def system_blocks(parts: PromptParts) -> list[dict[str, Any]]:
    """The system prompt as text blocks: persona, rules, output format, documents, few-shot examples.

    Two cache breakpoints, with the version's TTL (`parts.cache_ttl`): after the documents (the big,
    rarely changing part) and after the final block, so a new few-shot set still reuses the cached
    documents. With the moving breakpoint on the history (always 5 minutes: the API wants longer TTLs
    first) that makes 3 of the 4 the API allows. Empty parts are left out.

    Callers must not modify the returned blocks (they are shared for published versions).
    """
    return list(_assembled_system(parts).blocks)


def system_blocks_json(parts: PromptParts) -> str:
    """`system_blocks(parts)` encoded by `json_compact`: once per published version."""
    assembled = _assembled_system(parts)
    if assembled.encoded is None:
        assembled.encoded = json_compact(list(assembled.blocks))  # two threads racing here write equal text
    return assembled.encoded


def _assemble_system_blocks(parts: PromptParts) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if parts.persona.strip():
        blocks.append(_text_block(parts.persona.strip()))
    if parts.business_rules.strip():
        blocks.append(_text_block(f"<business_rules>\n{parts.business_rules.strip()}\n</business_rules>"))
    if parts.output_format.strip():
        blocks.append(_text_block(f"<output_format>\n{parts.output_format.strip()}\n</output_format>"))
    if parts.reference_documents:
        blocks.append(_text_block(documents_text(parts.reference_documents), cache_ttl=parts.cache_ttl))
    if parts.few_shot_examples.strip():
        blocks.append(_text_block(f"<examples>\n{parts.few_shot_examples.strip()}\n</examples>"))
    if blocks and "cache_control" not in blocks[-1]:
        blocks[-1]["cache_control"] = cache_control(parts.cache_ttl)
    return blocks


def user_message_text(text: str) -> str:
    """User-typed text, neutralised so it cannot open or close our tags, inside `<user_message>`."""
    return f"<{USER_MESSAGE_TAG}>\n{neutralise_tags(text)}\n</{USER_MESSAGE_TAG}>"


HUMAN_AGENT_TAG = "human_agent_message"


def human_agent_text(author: str, text: str) -> str:
    """A support agent's message, as the model sees it in the history: on the assistant side (the
    customer's side of the conversation was answered), but marked as written by a person, not by the
    model, so it neither imitates nor contradicts it as its own words (docs/inbox.md)."""
    name = escape(author or "support agent", quote=True)
    return f'<{HUMAN_AGENT_TAG} agent="{name}">\n{neutralise_tags(text.strip())}\n</{HUMAN_AGENT_TAG}>'


def _turn_text(turn: Turn) -> str:
    # History user turns are rendered exactly as the user-typed part was sent (without the account
    # context of that moment), so every later request renders the same bytes and reads them from cache.
    if turn.role == "user":
        return user_message_text(turn.text)
    if turn.role == "agent":
        return human_agent_text(turn.author, turn.text) if turn.text.strip() else ""
    return turn.text.strip()


def _append(messages: list[dict[str, Any]], role: str, block: dict[str, Any]) -> None:
    """Add a block, merging into the previous message when the role repeats (the API needs alternation)."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].append(block)
    else:
        messages.append({"role": role, "content": [block]})


def conversation_messages(
    *,
    summary: str,
    history: tuple[Turn, ...] | list[Turn],
    new_user_blocks: list[dict[str, Any]],
    lead_blocks: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Lead blocks (the prefix's knowledge), summary turn, history turns (breakpoint on the latest), then the
    new user turn's blocks."""
    messages: list[dict[str, Any]] = []
    for block in lead_blocks:
        _append(messages, "user", block)
    if summary.strip():
        _append(messages, "user", _text_block(f"<{SUMMARY_TAG}>\n{summary.strip()}\n</{SUMMARY_TAG}>"))
    last_history_block: dict[str, Any] | None = None
    for turn in history:
        text = _turn_text(turn)
        if not text or turn.role not in ("user", "assistant", "agent"):
            continue  # empty text blocks are rejected upstream; a failed answer may have left one
        role = "user" if turn.role == "user" else "assistant"  # an agent's message is on the answering side
        if not messages and role == "assistant":
            _append(messages, "user", _text_block(CONVERSATION_OPENER))
        last_history_block = _text_block(text)
        _append(messages, role, last_history_block)
    if last_history_block is not None:
        # The moving breakpoint: the latest complete turn, so long conversations read history from cache.
        last_history_block["cache_control"] = dict(EPHEMERAL)
    for block in new_user_blocks:
        _append(messages, "user", block)
    return messages


def search_result_block(source: KnowledgeSource) -> dict[str, Any]:
    """A retrieved article as the API's `search_result` block; each passage is one citable text block."""
    return {
        "type": "search_result",
        "source": source.source,
        "title": source.title,
        "content": [_text_block(passage) for passage in source.passages if passage.strip()],
        "citations": {"enabled": True},
    }


def chat_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The conversation for one chat request; the account context appears only in the new turn.

    Retrieved articles go first in the new turn, as search results: after every cache breakpoint, since
    they change with each question. A snapshot in the prefix with citations goes first of all, the same
    bytes for every conversation, with its own breakpoint (see `knowledge_prefix_blocks`).
    """
    new_turn = "\n\n".join(
        part
        for part in (
            request.account_context.strip(),
            request.turn_context.strip(),
            user_message_text(request.user_text),
        )
        if part
    )
    results = [search_result_block(source) for source in request.knowledge if any(p.strip() for p in source.passages)]
    return conversation_messages(
        summary=request.summary,
        history=request.history,
        new_user_blocks=[*results, _text_block(new_turn)],
        lead_blocks=knowledge_prefix_blocks(request.prompt),
    )


@lru_cache(maxsize=8)
def knowledge_prefix_blocks(parts: PromptParts) -> tuple[dict[str, Any], ...]:
    """The snapshot as `search_result` blocks with citations enabled, the last one a cache breakpoint with the
    version's TTL: tools, system and these blocks make one cached prefix shared by every conversation.

    The system then has one breakpoint (it carries no documents), so with the history's the request uses 3
    of the API's 4. Cached per parts (the snapshot is folded into them); callers must not modify the blocks.
    """
    sources = [source for source in parts.knowledge_prefix if any(p.strip() for p in source.passages)]
    blocks = [search_result_block(source) for source in sources]
    if blocks:
        blocks[-1]["cache_control"] = cache_control(parts.cache_ttl)
    return tuple(blocks)


def single_turn_messages(user_text: str) -> list[dict[str, Any]]:
    """A one-turn conversation for JSON tasks and batch requests (the caller formats `user_text`)."""
    return [{"role": "user", "content": [_text_block(user_text)]}]


@lru_cache(maxsize=64)
def tools_json(tools: tuple[ToolSpec, ...]) -> str:
    """The `tools` array of a request, encoded once per set of specs.

    Tools come first in the cached prefix (tools → system → messages): the same specs must give the
    same bytes on every request, or every cache after them misses.
    """
    return json_compact([tool.definition() for tool in tools])


def chat_params(
    request: ChatRequest,
    model: str,
    loop_messages: Sequence[dict[str, Any]] = (),
    tool_choice: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A chat request as Messages parameters for `model` (what is counted, previewed and sent).

    `loop_messages`: the tool loop's assistant `tool_use` and user `tool_result` turns after the question.
    """
    params: dict[str, Any] = {"model": model, "max_tokens": request.prompt.max_tokens}
    if request.tools:
        params["tools"] = [tool.definition() for tool in request.tools]
    params["system"] = system_blocks(request.prompt)
    params["messages"] = [*chat_messages(request), *loop_messages]
    if request.tools and tool_choice:
        params["tool_choice"] = tool_choice
    return params


def chat_body(
    request: ChatRequest,
    model: str,
    loop_messages: Sequence[dict[str, Any]] = (),
    tool_choice: dict[str, Any] | None = None,
) -> bytes:
    """`chat_params` with `stream` as the JSON request body, the system prompt's encoding reused."""
    head = json_compact({"model": model, "max_tokens": request.prompt.max_tokens, "stream": True})[:-1]
    tools = f',"tools":{tools_json(request.tools)}' if request.tools else ""
    system = system_blocks_json(request.prompt)
    messages = json_compact([*chat_messages(request), *loop_messages])
    choice = f',"tool_choice":{json_compact(tool_choice)}' if request.tools and tool_choice else ""
    return f'{head}{tools},"system":{system},"messages":{messages}{choice}}}'.encode()
