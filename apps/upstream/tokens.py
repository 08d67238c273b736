"""Deterministic token approximation.

The real tokenizer is not public, so the emulator counts "pieces": a run of letters/digits, a single
punctuation mark, or a single CJK character. Each piece costs ceil(len(piece) / 4) tokens, which puts
English prose at roughly one token per 4–4.5 characters, close to the real ratio. Whitespace is free.

Output text is split with the same rule (`split_output_tokens`), so a streamed answer has exactly
`count_text_tokens(answer)` deltas and `output_tokens` always agrees with what was sent.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

CHARS_PER_TOKEN = 4

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")

# Fixed costs for non-text inputs; the real API's costs depend on pixel size / page count.
IMAGE_TOKENS = 1_600
DOCUMENT_PAGE_TOKENS = 1_500


@lru_cache(maxsize=8_192)
def count_text_tokens(text: str) -> int:
    return sum(math.ceil(len(match.group()) / CHARS_PER_TOKEN) for match in _PIECE.finditer(text))


def split_output_tokens(text: str) -> list[str]:
    """Split `text` into token-sized chunks whose concatenation is exactly `text`.

    Leading whitespace travels with the chunk after it, trailing whitespace with the last chunk.
    """
    chunks: list[str] = []
    position = 0
    for match in _PIECE.finditer(text):
        piece = match.group()
        whitespace_before = text[position : match.start()]
        for offset in range(0, len(piece), CHARS_PER_TOKEN):
            part = piece[offset : offset + CHARS_PER_TOKEN]
            chunks.append((whitespace_before + part) if offset == 0 else part)
        position = match.end()
    if position < len(text):
        if chunks:
            chunks[-1] += text[position:]
        else:
            chunks.append(text[position:])
    return chunks


def count_json_tokens(value: Any) -> int:
    """Tokens for structured inputs (tool definitions, tool inputs), counted on their compact JSON."""
    return count_text_tokens(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
