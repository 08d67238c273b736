"""JSON tasks: one object validated against a pydantic schema, with one clarifying retry."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import TypeVar

import pydantic

from apps.llm.attempts import CallMeta, message_text
from apps.llm.context import estimate_tokens
from apps.llm.models import TaskType
from apps.llm.prompting import single_turn_messages, system_blocks
from apps.llm.resilience import UpstreamUnavailable, create_with_fallback
from apps.llm.retry import RetryPolicy
from apps.llm.routing import route
from apps.llm.types import JsonResult, PromptParts, RouteDecision

SchemaT = TypeVar("SchemaT", bound=pydantic.BaseModel)

JSON_FOLLOW_UP = (
    "Your previous reply was not valid JSON for the schema below ({error}). Reply with only the JSON "
    "object, no prose and no code fences.\n<schema>\n{schema}\n</schema>"
)

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def _validate_json(text: str, schema: type[SchemaT]) -> tuple[SchemaT | None, str]:
    """(validated object, "") or (None, why it was rejected)."""
    candidate = _FENCE.sub("", text.strip())
    start, end = candidate.find("{"), candidate.rfind("}")
    if start == -1 or end < start:
        return None, "no JSON object found"
    try:
        data = json.loads(candidate[start : end + 1])
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg}"
    try:
        return schema.model_validate(data), ""
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        return None, f"schema mismatch: {problems}"


def parse_json_reply(text: str, schema: type[SchemaT]) -> SchemaT | None:
    """The reply as a validated `schema` instance, or None (prose, bad JSON, wrong keys)."""
    return _validate_json(text, schema)[0]


def complete_json(
    *,
    prompt: PromptParts,
    user_text: str,
    schema: type[pydantic.BaseModel],
    task_type: str = TaskType.CLASSIFICATION,
    plan_tier: str = "",
    conversation_id: str = "",
    policy: RetryPolicy | None = None,
) -> JsonResult:
    """Ask for one JSON object matching `schema`; on an invalid reply, ask once more with the error.

    Never raises on bad output or upstream failure: returns JsonResult(ok=False, raw_text, error) so the
    caller's fallback handler decides (error "upstream_unavailable" when no model answered).
    """
    params = {
        "max_tokens": prompt.max_tokens,
        "system": system_blocks(prompt),
        "messages": single_turn_messages(user_text),
    }
    decision = route(
        task_type=task_type, plan_tier=plan_tier, prompt_tokens=estimate_tokens(params), prompt_tier=prompt.model_tier
    )
    meta = CallMeta(task_type, prompt, conversation_id, None, decision.reason)
    try:
        message, model = create_with_fallback(params=params, decision=decision, meta=meta, policy=policy)
    except UpstreamUnavailable as exc:
        return JsonResult(ok=False, error=exc.code, attempts=1)
    raw = message_text(message)
    data, error = _validate_json(raw, schema)
    if data is not None:
        return JsonResult(ok=True, data=data, raw_text=raw, model=model, attempts=1)

    follow_up = JSON_FOLLOW_UP.format(error=error, schema=json.dumps(schema.model_json_schema(), sort_keys=True))
    retry_params = {
        **params,
        "messages": [
            *params["messages"],
            {"role": "assistant", "content": [{"type": "text", "text": raw.strip() or "(empty reply)"}]},
            {"role": "user", "content": [{"type": "text", "text": follow_up}]},
        ],
    }
    # The model that produced the bad reply is asked again first: it has the conversation to fix.
    retry_decision = RouteDecision(model=model, fallbacks=decision.fallbacks, reason=f"{decision.reason}:json-retry")
    try:
        message, model = create_with_fallback(
            params=retry_params,
            decision=retry_decision,
            meta=replace(meta, route_reason=retry_decision.reason),
            policy=policy,
        )
    except UpstreamUnavailable:
        return JsonResult(ok=False, raw_text=raw, error=error, model=model, attempts=1)
    second = message_text(message)
    data, second_error = _validate_json(second, schema)
    if data is not None:
        return JsonResult(ok=True, data=data, raw_text=second, model=model, attempts=2)
    return JsonResult(ok=False, raw_text=second, error=second_error, model=model, attempts=2)
