"""Turn a validated create body into a Message: usage accounting, the answer, stop handling, SSE events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .answers import Answer, compose_answer
from .cache import CacheUsage, PromptCache
from .config import EmulatorConfig
from .errors import invalid_request, new_id
from .prompt import prompt_blocks
from .tokens import count_json_tokens, split_output_tokens

TOOL_CALL_OVERHEAD_TOKENS = 10
JSON_DELTA_CHARS = 16


@dataclass
class Generation:
    message_id: str
    model: str
    usage: CacheUsage
    stop_reason: str
    stop_sequence: str | None = None
    stop_details: dict[str, Any] | None = None
    text_chunks: list[str] = field(default_factory=list)  # one per output token
    tool_use: dict[str, Any] | None = None  # a complete tool_use content block
    # A cited answer: one text block per segment, (its output tokens, its citations); `text_chunks` is
    # then all their tokens in order.
    segments: list[tuple[list[str], list[dict[str, Any]]]] = field(default_factory=list)
    output_tokens: int = 0
    service_tier: str = "standard"

    @property
    def text(self) -> str:
        return "".join(self.text_chunks)

    def content(self) -> list[dict[str, Any]]:
        if self.tool_use is not None:
            return [self.tool_use]
        if self.segments:
            return [_text_block("".join(chunks), citations) for chunks, citations in self.segments if chunks]
        return [{"type": "text", "text": self.text}] if self.text_chunks else []

    def usage_dict(self, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            **self.usage.as_usage(),
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": self.service_tier,
        }

    def message(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content(),
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "stop_details": self.stop_details,
            "usage": self.usage_dict(),
        }


def generate(
    body: dict[str, Any],
    *,
    config: EmulatorConfig,
    cache: PromptCache,
    prose_instead_of_json: bool = False,
    service_tier: str = "standard",
) -> Generation:
    """Run "the model" on a validated body. Raises 400 when the prompt exceeds the context window."""
    model = body["model"]
    blocks = prompt_blocks(body)
    prompt_tokens = sum(block.tokens for block in blocks)
    window = config.context_window(model)
    if prompt_tokens > window:
        raise invalid_request(f"prompt is too long: {prompt_tokens} tokens > {window} maximum")

    usage = cache.account(model, blocks, config.min_cacheable(model))
    generation = Generation(
        message_id=new_id("msg_"), model=model, usage=usage, stop_reason="end_turn", service_tier=service_tier
    )
    max_tokens: int = body["max_tokens"]
    if max_tokens == 0:  # cache pre-warming: nothing is generated
        generation.stop_reason = "max_tokens"
        return generation

    answer = compose_answer(body, prose_instead_of_json=prose_instead_of_json)
    if answer.tool_use is not None:
        return _with_tool_call(generation, answer)
    # The model may also stop because the context window is full, before reaching max_tokens.
    output_budget = min(max_tokens, window - prompt_tokens)
    return _with_text(generation, answer, body.get("stop_sequences") or [], output_budget, max_tokens)


def _with_tool_call(generation: Generation, answer: Answer) -> Generation:
    if answer.tool_use is None:
        raise ValueError("This answer calls no tool.")
    generation.tool_use = {
        "type": "tool_use",
        "id": new_id("toolu_"),
        "name": answer.tool_use["name"],
        "input": answer.tool_use["input"],
    }
    generation.stop_reason = "tool_use"
    generation.output_tokens = TOOL_CALL_OVERHEAD_TOKENS + count_json_tokens(answer.tool_use["input"])
    return generation


def _with_text(
    generation: Generation, answer: Answer, stop_sequences: list[str], output_budget: int, max_tokens: int
) -> Generation:
    text, matched_stop = _cut_at_stop_sequence(answer.text, stop_sequences)
    if answer.segments and matched_stop is None:
        generation.segments = _segment_chunks(answer.segments, output_budget)
    chunks = split_output_tokens(text)
    if len(chunks) > output_budget:
        chunks = chunks[: max(output_budget, 0)]
        generation.stop_reason = "max_tokens" if output_budget >= max_tokens else "model_context_window_exceeded"
    elif matched_stop is not None:
        generation.stop_reason = "stop_sequence"
        generation.stop_sequence = matched_stop
    else:
        generation.stop_reason = answer.stop_reason
    if generation.stop_reason == "refusal":
        generation.stop_details = {"type": "refusal", "category": answer.refusal_category, "explanation": None}
    generation.text_chunks = chunks
    # Like the real API, even an empty answer costs at least one output token.
    generation.output_tokens = max(len(chunks), 1)
    return generation


def _text_block(text: str, citations: list[dict[str, Any]]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if citations:
        block["citations"] = citations
    return block


def _segment_chunks(
    segments: tuple[tuple[str, tuple[dict[str, Any], ...]], ...], budget: int
) -> list[tuple[list[str], list[dict[str, Any]]]]:
    """Each segment's output tokens, cut after `budget` tokens in all (a cut segment keeps its citations)."""
    result: list[tuple[list[str], list[dict[str, Any]]]] = []
    left = max(budget, 0)
    for text, citations in segments:
        if left <= 0:
            break
        chunks = split_output_tokens(text)[:left]
        left -= len(chunks)
        result.append((chunks, list(citations)))
    return result


def _cut_at_stop_sequence(text: str, stop_sequences: list[str]) -> tuple[str, str | None]:
    earliest: tuple[int, str] | None = None
    for sequence in stop_sequences:
        position = text.find(sequence)
        if position >= 0 and (earliest is None or position < earliest[0]):
            earliest = (position, sequence)
    if earliest is None:
        return text, None
    return text[: earliest[0]], earliest[1]


@dataclass(frozen=True)
class StreamEvent:
    name: str
    data: dict[str, Any] | None  # None when `raw` already holds the encoded event
    is_token: bool = False  # a content delta: paced by token_ms and counted for stream cuts
    raw: bytes = b""

    def encode(self) -> bytes:
        if self.raw:
            return self.raw
        payload = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return f"event: {self.name}\ndata: {payload}\n\n".encode()


def _constant_event(name: str, data: dict[str, Any]) -> StreamEvent:
    event = StreamEvent(name, data)
    return StreamEvent(name, data, raw=event.encode())


# Events that never vary are encoded once; a text delta is a fixed prefix + the JSON string of its text.
_PING = _constant_event("ping", {"type": "ping"})
_TEXT_BLOCK_START = _constant_event(
    "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
)
_BLOCK_STOP = _constant_event("content_block_stop", {"type": "content_block_stop", "index": 0})
_MESSAGE_STOP = _constant_event("message_stop", {"type": "message_stop"})
_TEXT_DELTA_PREFIX = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
)
_TEXT_DELTA_SUFFIX = b"}}\n\n"


def _text_delta(chunk: str) -> StreamEvent:
    raw = _TEXT_DELTA_PREFIX + json.dumps(chunk, ensure_ascii=False).encode() + _TEXT_DELTA_SUFFIX
    return StreamEvent("content_block_delta", None, is_token=True, raw=raw)


def stream_events(generation: Generation) -> Iterator[StreamEvent]:
    """The real event sequence: message_start, content block(s) with a ping, message_delta, message_stop."""
    start_message = {
        **generation.message(),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "stop_details": None,
        "usage": generation.usage_dict(output_tokens=min(generation.output_tokens, 1)),
    }
    yield StreamEvent("message_start", {"type": "message_start", "message": start_message})
    if generation.tool_use is not None:
        yield from _tool_use_block_events(generation.tool_use)
    elif generation.segments:
        yield from _cited_block_events(generation.segments)
    elif generation.text_chunks:
        yield from _text_block_events(generation.text_chunks)
    else:
        yield _PING
    yield StreamEvent(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": generation.stop_reason,
                "stop_sequence": generation.stop_sequence,
                "stop_details": generation.stop_details,
            },
            "usage": generation.usage_dict(),
        },
    )
    yield _MESSAGE_STOP


def _text_block_events(chunks: list[str]) -> Iterator[StreamEvent]:
    yield _TEXT_BLOCK_START
    yield _PING
    for chunk in chunks:
        yield _text_delta(chunk)
    yield _BLOCK_STOP


def _cited_block_events(segments: list[tuple[list[str], list[dict[str, Any]]]]) -> Iterator[StreamEvent]:
    """One text block per segment; a cited block's `citations_delta` events follow its text, as the API's do."""
    index = 0
    for chunks, citations in segments:
        if not chunks:
            continue
        yield StreamEvent(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        )
        if index == 0:
            yield _PING
        for chunk in chunks:
            yield StreamEvent(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}},
                is_token=True,
            )
        for citation in citations:
            yield StreamEvent(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "citations_delta", "citation": citation},
                },
            )
        yield StreamEvent("content_block_stop", {"type": "content_block_stop", "index": index})
        index += 1


def _tool_use_block_events(tool_use: dict[str, Any]) -> Iterator[StreamEvent]:
    yield StreamEvent(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {**tool_use, "input": {}}},
    )
    yield _PING
    arguments = json.dumps(tool_use["input"], ensure_ascii=False)
    for offset in range(0, len(arguments), JSON_DELTA_CHARS):
        yield StreamEvent(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": arguments[offset : offset + JSON_DELTA_CHARS]},
            },
            is_token=True,
        )
    yield _BLOCK_STOP
