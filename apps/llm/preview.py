"""Prompt preview (rendered by the prompts admin): the exact request, its tokens, its cache warnings."""

from __future__ import annotations

from django.conf import settings

from apps.llm.context import context_budget, count_request_tokens, estimate_tokens, min_cacheable_tokens
from apps.llm.models import TaskType
from apps.llm.prompting import chat_params
from apps.llm.routing import route
from apps.llm.types import ChatRequest, PreviewResult, PromptParts


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
    )


# Re-exported for callers that only import the gateway.
