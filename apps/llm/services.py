"""Writes of the LLM app: the per-attempt call log."""

from __future__ import annotations

import logging
from decimal import Decimal

from apps.llm.deprecations import model_call_warn
from apps.llm.models import LLMCall
from apps.llm.pricing import cost_usd

logger = logging.getLogger(__name__)


def _count_metrics(call: LLMCall) -> None:
    # apps.core.metrics is optional (Prometheus may not be installed in every deployment).
    try:
        from apps.core.metrics import record_upstream_call
    except ImportError:
        return
    record_upstream_call(
        model=call.model,
        status=call.status,
        attempt=call.attempt,
        fallback_step=call.fallback_step,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_creation_input_tokens=call.cache_creation_input_tokens,
        cache_read_input_tokens=call.cache_read_input_tokens,
        cost_usd=float(call.cost_usd),
    )


def llm_call_record(
    *,
    task_type: str,
    model: str,
    prompt_slug: str = "",
    prompt_version: str = "",
    prompt_version_id: int | None = None,
    knowledge_snapshot_id: int | None = None,
    conversation_id: str | None = "",
    message_id: int | None = None,
    route_reason: str = "",
    attempt: int = 1,
    fallback_step: int = 0,
    is_batch: bool = False,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    cache_ttl: str = "5m",
    cache_creation_1h_input_tokens: int = 0,
    ttft_ms: int | None = None,
    latency_ms: int = 0,
    stop_reason: str = "",
    status: str = LLMCall.Status.OK,
    error_type: str = "",
    refused: bool = False,
    output_chars: int = 0,
    request_id: str = "",
    cost: Decimal | None = None,
) -> LLMCall:
    """Log one upstream attempt, priced from its usage (or `cost` when given). Raises nothing of its own.

    Only metadata is stored: no prompt or answer text, no headers, no credentials.
    """
    model_call_warn(model)  # every attempt passes here, fallbacks and batches included
    if cost is None:
        cost = cost_usd(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
            cache_ttl=cache_ttl,
            cache_creation_1h_input_tokens=cache_creation_1h_input_tokens,
            batch=is_batch,
        )
    call = LLMCall.objects.create(
        task_type=task_type,
        model=model,
        prompt_slug=prompt_slug,
        prompt_version=prompt_version,
        prompt_version_id=prompt_version_id,
        knowledge_snapshot_id=knowledge_snapshot_id,
        conversation_id=str(conversation_id or ""),
        message_id=message_id,
        route_reason=route_reason[:200],
        attempt=attempt,
        fallback_step=fallback_step,
        is_batch=is_batch,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_creation_input_tokens=cache_creation_input_tokens,
        cache_read_input_tokens=cache_read_input_tokens,
        cost_usd=cost,
        ttft_ms=ttft_ms,
        latency_ms=latency_ms,
        stop_reason=stop_reason or "",
        status=status,
        error_type=error_type[:80],
        refused=refused,
        output_chars=output_chars,
        request_id=request_id or "",
    )
    _count_metrics(call)
    return call
