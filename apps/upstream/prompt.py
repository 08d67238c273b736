"""A validated request body flattened into the ordered blocks the service caches and counts.

The real service renders tools → system → messages into one prompt; caching and token counting both
work on that order, so both use `prompt_blocks()`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .tokens import DOCUMENT_PAGE_TOKENS, IMAGE_TOKENS, count_json_tokens, count_text_tokens

# Reference material in a system prompt: documents to answer from and few-shot examples. What they say
# ("responses are JSON", "summary: …") describes the material, it is not an instruction to the model.
_REFERENCE_MATERIAL = re.compile(r"<(documents?|examples?)\b[^>]*>.*?</\1\s*>", re.DOTALL | re.IGNORECASE)

# Role markers ("\n\nHuman:" / "\n\nAssistant:") cost a few tokens per message in the real prompt.
MESSAGE_FRAMING_TOKENS = 3


@dataclass(frozen=True)
class PromptBlock:
    identity: bytes  # SHA-256 of the block's canonical JSON (cache_control excluded): what prompt caching keys on
    tokens: int
    cache_control: dict[str, Any] | None


def _canonical(value: Any) -> bytes:
    if isinstance(value, dict):
        value = {key: item for key, item in value.items() if key != "cache_control"}
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _identity(value: Any) -> bytes:
    return hashlib.sha256(_canonical(value)).digest()


# Every request of a conversation repeats the same ~16k-token system prompt and the same history, so the
# identity and token count of a text block are derived once per distinct text (bounded, least recently used).
@lru_cache(maxsize=4_096)
def _text_block_facts(role: str | None, text: str) -> tuple[bytes, int]:
    block = {"type": "text", "text": text}
    identity = _identity(block if role is None else {"role": role, "block": block})
    return identity, count_text_tokens(text)


def _is_plain_text(block: dict[str, Any]) -> bool:
    return block.get("type") == "text" and isinstance(block.get("text"), str) and block.keys() <= _TEXT_BLOCK_KEYS


_TEXT_BLOCK_KEYS = frozenset({"type", "text", "cache_control"})


def content_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a bare string is shorthand for one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content


def block_tokens(block: dict[str, Any]) -> int:
    block_type = block.get("type")
    if block_type == "text":
        return count_text_tokens(block.get("text", ""))
    if block_type == "image":
        return IMAGE_TOKENS
    if block_type == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            return count_text_tokens(source.get("data", ""))
        if source.get("type") == "content":
            return sum(block_tokens(inner) for inner in content_blocks(source.get("content", [])))
        return DOCUMENT_PAGE_TOKENS
    if block_type == "search_result":
        inner_tokens = sum(block_tokens(item) for item in block.get("content") or [])
        return inner_tokens + count_text_tokens(f"{block.get('title', '')} {block.get('source', '')}")
    if block_type == "tool_result":
        inner = block.get("content", "")
        return 2 + sum(block_tokens(item) for item in content_blocks(inner)) if inner else 2
    if block_type == "tool_use":
        return 2 + count_text_tokens(block.get("name", "")) + count_json_tokens(block.get("input", {}))
    if block_type == "thinking":
        return count_text_tokens(block.get("thinking", ""))
    return count_json_tokens(block)


def text_of(content: str | list[dict[str, Any]]) -> str:
    """All text a reader would see in a message's content (text blocks and tool results)."""
    parts: list[str] = []
    for block in content_blocks(content):
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result" and block.get("content"):
            parts.append(text_of(block["content"]))
        elif block.get("type") == "document" and (block.get("source") or {}).get("type") == "text":
            parts.append(block["source"].get("data", ""))
    return "\n".join(parts)


def system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if not system:
        return ""
    return text_of(system)


def instructions_of(system: str) -> str:
    """The system text a model takes as instructions: without `<document(s)>` and `<example(s)>` blocks."""
    if "<" not in system:
        return system
    return _REFERENCE_MATERIAL.sub(" ", system)


def system_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    system = body.get("system")
    if not system:
        return []
    return content_blocks(system)


def prompt_blocks(body: dict[str, Any]) -> list[PromptBlock]:
    blocks: list[PromptBlock] = []
    for tool in body.get("tools") or []:
        blocks.append(PromptBlock(_identity(tool), count_json_tokens(tool), tool.get("cache_control")))
    for block in system_blocks(body):
        if _is_plain_text(block):
            identity, tokens = _text_block_facts(None, block["text"])
        else:
            identity, tokens = _identity(block), block_tokens(block)
        blocks.append(PromptBlock(identity, tokens, block.get("cache_control")))
    for message in body.get("messages") or []:
        role = message["role"]
        for index, block in enumerate(content_blocks(message["content"])):
            framing = MESSAGE_FRAMING_TOKENS if index == 0 else 0
            if _is_plain_text(block):
                identity, tokens = _text_block_facts(role, block["text"])
            else:
                identity = _identity({"role": role, "block": _strip_cache_control(block)})
                tokens = block_tokens(block)
            blocks.append(PromptBlock(identity, tokens + framing, block.get("cache_control")))
    return _with_automatic_breakpoint(blocks, body.get("cache_control"))


def cache_controls(body: dict[str, Any]) -> list[Any]:
    """Every breakpoint's `cache_control`, in prompt order, as `prompt_blocks` would mark them, without
    the cost of identifying and counting the blocks (validation needs only these)."""
    controls: list[Any] = [tool.get("cache_control") for tool in body.get("tools") or []]
    controls += [block.get("cache_control") for block in system_blocks(body)]
    for message in body.get("messages") or []:
        controls += [block.get("cache_control") for block in content_blocks(message["content"])]
    top_level = body.get("cache_control")
    if top_level and controls and not controls[-1]:
        controls[-1] = top_level
    return [control for control in controls if control is not None]


def _strip_cache_control(block: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in block.items() if key != "cache_control"}


def _with_automatic_breakpoint(blocks: list[PromptBlock], cache_control: dict[str, Any] | None) -> list[PromptBlock]:
    """Top-level `cache_control` marks the last block, as the real API's automatic caching does."""
    if not cache_control or not blocks or blocks[-1].cache_control:
        return blocks
    last = blocks[-1]
    return [*blocks[:-1], PromptBlock(last.identity, last.tokens, cache_control)]


def count_prompt_tokens(body: dict[str, Any]) -> int:
    return sum(block.tokens for block in prompt_blocks(body))
