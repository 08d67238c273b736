"""Deterministic token approximation.

The real tokenizer is not public, so the emulator counts "pieces": a run of letters/digits, a single
punctuation mark, or a single CJK character. Each piece costs ceil(len(piece) / 4) tokens, which puts
English prose at roughly one token per 4–4.5 characters, close to the real ratio. Whitespace is free.

Output text is split with the same rule (`split_output_tokens`), so a streamed answer has exactly
`count_text_tokens(answer)` deltas and `output_tokens` always agrees with what was sent.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# One token: a CJK character, up to 4 letters/digits of a word (so a run costs ceil(len / 4)), or one
# punctuation mark.
_TOKEN = rf"[{_CJK}]|[^\W{_CJK}]{{1,4}}|[^\w\s]"
_TOKEN_PATTERN = re.compile(_TOKEN)
_OUTPUT_CHUNK_PATTERN = re.compile(rf"\s*(?:{_TOKEN})")  # a token with the whitespace before it

# Fixed costs for non-text inputs; the real API's costs depend on pixel size / page count.
IMAGE_TOKENS = 1_600
DOCUMENT_PAGE_TOKENS = 1_500


@lru_cache(maxsize=8_192)
def count_text_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN_PATTERN.finditer(text))


def split_output_tokens(text: str) -> list[str]:
    """Split `text` into token-sized chunks whose concatenation is exactly `text`.

    Leading whitespace travels with the chunk after it, trailing whitespace with the last chunk.
    """
    chunks = _OUTPUT_CHUNK_PATTERN.findall(text)
    consumed = len("".join(chunks))
    if consumed < len(text):  # only trailing whitespace is left over
        if chunks:
            chunks[-1] += text[consumed:]
        else:
            chunks.append(text)
    return chunks


def count_json_tokens(value: Any) -> int:
    """Tokens for structured inputs (tool definitions, tool inputs), counted on their compact JSON."""
    return count_text_tokens(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
