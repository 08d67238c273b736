"""Helpers for Message Batches jobs (the nightly classification in apps.triage builds on these).

Batch requests carry the same system blocks (and cache breakpoint) as interactive calls, so the
shared prefix is cached across the batch; they never stream. Results are logged like any other call,
priced at the batch discount.
"""

from __future__ import annotations

from typing import Any

import anthropic

from apps.llm.attempts import message_text as _message_text
from apps.llm.models import LLMCall, TaskType
from apps.llm.prompting import single_turn_messages, system_blocks
from apps.llm.services import llm_call_record
from apps.llm.structured import parse_json_reply
from apps.llm.types import PromptParts

__all__ = ["batch_request_params", "batch_result_record", "message_text", "parse_json_reply"]


def batch_request_params(*, prompt: PromptParts, user_text: str, model: str) -> dict[str, Any]:
    """`params` for one Batches API request. `user_text` is used as given: the caller formats it."""
    return {
        "model": model,
        "max_tokens": prompt.max_tokens,
        "system": system_blocks(prompt),
        "messages": single_turn_messages(user_text),
    }


def message_text(message: anthropic.types.Message | None) -> str:
    """The concatenated text blocks of a result message ("" for None)."""
    return _message_text(message)


def batch_result_record(
    *,
    custom_id: str,
    model: str,
    message: anthropic.types.Message | None,
    prompt: PromptParts,
    conversation_id: str,
    error_type: str = "",
    task_type: str = TaskType.CLASSIFICATION,
) -> LLMCall:
    """Log one batch result (succeeded: `message`; errored/expired/canceled: None + `error_type`).

    The row's request_id is the batch `custom_id`, which ties it back to the request that was sent.
    """
    usage = message.usage if message is not None else None
    stop_reason = (message.stop_reason or "") if message is not None else ""
    return llm_call_record(
        task_type=task_type,
        model=(message.model if message is not None and message.model else model),
        prompt_slug=prompt.slug,
        prompt_version=prompt.version,
        prompt_version_id=prompt.version_id,
        knowledge_snapshot_id=prompt.knowledge_snapshot_id,
        conversation_id=conversation_id,
        route_reason="batch",
        is_batch=True,
        input_tokens=getattr(usage, "input_tokens", 0) or 0,
        output_tokens=getattr(usage, "output_tokens", 0) or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
        cache_creation_1h_input_tokens=getattr(getattr(usage, "cache_creation", None), "ephemeral_1h_input_tokens", 0)
        or 0,
        stop_reason=stop_reason,
        status=LLMCall.Status.OK if message is not None and not error_type else LLMCall.Status.ERROR,
        error_type=error_type or ("" if message is not None else "no_message"),
        refused=stop_reason == "refusal",
        output_chars=len(_message_text(message)),
        request_id=custom_id,
    )
