"""Prompt preview (rendered by the prompts admin): the exact request, its tokens, its cache warnings."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from apps.llm.context import context_budget, count_request_tokens, estimate_tokens, min_cacheable_tokens
from apps.llm.models import TaskType
from apps.llm.pricing import CACHE_READ_MULTIPLIER, CACHE_WRITE_MULTIPLIER, MILLION, prices_for
from apps.llm.prompting import chat_params
from apps.llm.routing import route
from apps.llm.types import CacheTTLFigures, ChatRequest, PreviewResult, PromptParts


def cache_ttl_break_even() -> float:
    """Requests per hour (each over 5 minutes after the last) above which the 1-hour TTL is cheaper.

    With a 5-minute TTL each such request writes the prefix again: n × w5. With 1 hour: one write, then
    reads: w1 + (n − 1) × r. Equal at n = (w1 − r) / (w5 − r) — 1.65 with the API's 2×, 1.25× and 0.1×.
    Requests closer together than 5 minutes read a 5-minute entry too, and then 5 minutes is cheaper.
    """
    w5, w1, r = CACHE_WRITE_MULTIPLIER["5m"], CACHE_WRITE_MULTIPLIER["1h"], CACHE_READ_MULTIPLIER
    return float((w1 - r) / (w5 - r))


def cache_ttl_figures(*, model: str, prefix_tokens: int, ttl: str) -> CacheTTLFigures | None:
    """The prefix's write cost with each TTL and its read cost, for `model` (None when it has no price)."""
    prices = prices_for(model)
    if prices is None:
        return None
    base = Decimal(prefix_tokens) * prices[0] / MILLION
    cents = Decimal("0.000001")
    return CacheTTLFigures(
        ttl=ttl,
        write_5m_usd=(base * CACHE_WRITE_MULTIPLIER["5m"]).quantize(cents),
        write_1h_usd=(base * CACHE_WRITE_MULTIPLIER["1h"]).quantize(cents),
        read_usd=(base * CACHE_READ_MULTIPLIER).quantize(cents),
        break_even_per_hour=cache_ttl_break_even(),
    )


def preview_request(
    parts: PromptParts, sample_user_text: str, account_context: str, *, plan_tier: str = "pro", model: str = ""
) -> PreviewResult:
    """The exact chat request a version would send, its token count and whether its prefix caches.

    `model` defaults to the route for `plan_tier`. Raises nothing: counts fall back to estimates.
    """
    request = ChatRequest(
        prompt=parts,
        history=(),
        summary="",
        user_text=sample_user_text,
        account_context=account_context,
        plan_tier=plan_tier,
        language="en",
        conversation_id=None,
    )
    if not model:
        model = route(
            task_type=TaskType.CHAT,
            plan_tier=plan_tier,
            prompt_tokens=estimate_tokens(chat_params(request, "")),
            prompt_tier=parts.model_tier,
        ).model
    params = chat_params(request, model)
    total, estimated_total = count_request_tokens(params)
    without_system, estimated_rest = count_request_tokens({**params, "system": []})
    cached_prefix = max(0, total - without_system)
    minimum = min_cacheable_tokens(model)
    warnings: list[str] = []
    if cached_prefix < minimum:
        warnings.append(
            f"The cacheable prefix is {cached_prefix:,} tokens, below the {minimum:,}-token minimum for {model}: "
            "requests will run uncached and cost full input price."
        )
    for tier, other in sorted(settings.LLM_MODELS.items()):
        if other != model and cached_prefix < min_cacheable_tokens(other):
            warnings.append(
                f"On {other} ({tier}) the prefix is below its {min_cacheable_tokens(other):,}-token cache minimum."
            )
    budget = context_budget(model, parts.max_tokens)
    if total > budget:
        warnings.append(f"The request ({total:,} tokens) exceeds {model}'s input budget of {budget:,} tokens.")
    if estimated_total or estimated_rest:
        warnings.append("count_tokens was unavailable: figures are local estimates.")
    return PreviewResult(
        params=params,
        input_tokens=total,
        cached_prefix_tokens=cached_prefix,
        min_cacheable_tokens=minimum,
        warnings=warnings,
        model=model,
        estimated=estimated_total or estimated_rest,
        cache=cache_ttl_figures(model=model, prefix_tokens=cached_prefix, ttl=parts.cache_ttl),
    )


# Re-exported for callers that only import the gateway.
