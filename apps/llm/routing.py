"""Which model answers a request: admin rules first, then the built-in defaults.

Order of precedence: an explicit override (a tier name or a model id) → the first enabled
`RoutingRule` (by priority) that matches → the prompt version's `model_tier` (chat only) → defaults:
classification and summaries on Haiku; chat by plan (free → Haiku, pro → Sonnet, enterprise → Opus),
one tier up for prompts longer than LLM_LONG_PROMPT_TOKENS. Fallbacks go down the tiers.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from apps.llm.models import RoutingRule, TaskType
from apps.llm.types import RouteDecision

TIERS: tuple[str, ...] = ("haiku", "sonnet", "opus")  # cheapest first
PLAN_TIERS: dict[str, str] = {"free": "haiku", "pro": "sonnet", "enterprise": "opus"}
TASK_TIERS: dict[str, str] = {TaskType.CLASSIFICATION: "haiku", TaskType.SUMMARISATION: "haiku"}


def model_for(tier_or_id: str) -> str:
    """A tier name resolved through settings.LLM_MODELS; anything else is taken as a model id."""
    value = tier_or_id.strip()
    return settings.LLM_MODELS.get(value, value)


def tier_of(model: str) -> str | None:
    for tier, model_id in settings.LLM_MODELS.items():
        if model_id == model:
            return tier
    return next((tier for tier in TIERS if tier in model), None)


def fallbacks_below(model: str) -> tuple[str, ...]:
    """The configured models of the tiers below `model` (opus → sonnet → haiku)."""
    tier = tier_of(model)
    if tier not in TIERS:
        return tuple(model_for(t) for t in reversed(TIERS) if model_for(t) != model)
    lower = TIERS[: TIERS.index(tier)]
    return tuple(model_for(t) for t in reversed(lower))


def rule_models(rule: RoutingRule) -> list[str]:
    """Every model a rule can send a request to: its own, then its fallback chain's (tiers resolved)."""
    models = [rule.model_id.strip() or model_for(rule.model_tier)]
    models += [model_for(part) for part in rule.fallback_chain.split(",") if part.strip()]
    return [model for model in dict.fromkeys(models) if model]


def _step_up(tier: str) -> str:
    index = TIERS.index(tier) if tier in TIERS else 0
    return TIERS[min(index + 1, len(TIERS) - 1)]


def _decision(model: str, reason: str, chain: str = "") -> RouteDecision:
    if chain.strip():
        fallbacks = tuple(model_for(part) for part in chain.split(",") if part.strip())
    else:
        fallbacks = fallbacks_below(model)
    return RouteDecision(model=model, fallbacks=tuple(f for f in dict.fromkeys(fallbacks) if f != model), reason=reason)


# Every chat answer routes, and the rules change a few times a year: each process keeps the enabled
# rules for LLM_ROUTING_RULES_CACHE_SECONDS instead of querying them per answer. A save or delete in
# this process (the admin, seeding) drops the copy at once; other processes see it within the TTL.
_rules_lock = threading.Lock()
_rules_cache: tuple[float, tuple[RoutingRule, ...]] | None = None


def _rules_ttl() -> float:
    return float(getattr(settings, "LLM_ROUTING_RULES_CACHE_SECONDS", 5.0))


def rules_cached() -> bool:
    """True when `route` would answer from the in-process copy (no query): callable on the event loop."""
    cached = _rules_cache
    return cached is not None and time.monotonic() < cached[0]


def rules_expired() -> bool:
    """True when the in-process copy is past its TTL: `route(..., allow_stale=True)` still needs no query."""
    cached = _rules_cache
    return cached is not None and time.monotonic() >= cached[0]


def enabled_rules(*, allow_stale: bool = False) -> tuple[RoutingRule, ...]:
    """The enabled rules in priority order (one query at most per TTL; none with `allow_stale` and a copy)."""
    cached = _rules_cache
    if cached is not None and (allow_stale or time.monotonic() < cached[0]):
        return cached[1]
    return rules_refresh()


def rules_refresh() -> tuple[RoutingRule, ...]:
    """Read the enabled rules and keep them for the TTL."""
    global _rules_cache
    rules = tuple(RoutingRule.objects.filter(enabled=True).order_by("priority", "id"))
    ttl = _rules_ttl()
    with _rules_lock:
        _rules_cache = (time.monotonic() + ttl, rules) if ttl > 0 else None
    return rules


def rules_cache_clear(**_: object) -> None:
    global _rules_cache
    with _rules_lock:
        _rules_cache = None


post_save.connect(rules_cache_clear, sender=RoutingRule, dispatch_uid="llm.routing.rules_cache_clear.save")
post_delete.connect(rules_cache_clear, sender=RoutingRule, dispatch_uid="llm.routing.rules_cache_clear.delete")


def route(
    *,
    task_type: str,
    plan_tier: str,
    prompt_tokens: int,
    override: str = "",
    prompt_tier: str = "",
    allow_stale: bool = False,
) -> RouteDecision:
    """Choose the model and fallback chain for one request (a short query on RoutingRule, cached briefly).

    `allow_stale`: an expired in-process copy of the rules will do (see `enabled_rules`).
    """
    if override.strip():
        return _decision(model_for(override), f"override:{override.strip()}")
    for rule in enabled_rules(allow_stale=allow_stale):
        if rule.matches(task_type=task_type, plan_tier=plan_tier, prompt_tokens=prompt_tokens):
            model = rule.model_id.strip() or model_for(rule.model_tier)
            return _decision(model, f"rule:{rule.name}", rule.fallback_chain)
    return default_route(task_type=task_type, plan_tier=plan_tier, prompt_tokens=prompt_tokens, prompt_tier=prompt_tier)


def default_route(*, task_type: str, plan_tier: str, prompt_tokens: int, prompt_tier: str = "") -> RouteDecision:
    """The built-in route, used when no rule matches (the seeded rules mirror it)."""
    if task_type in TASK_TIERS:
        return _decision(model_for(TASK_TIERS[task_type]), f"default:{task_type}")
    if prompt_tier in TIERS:
        tier, reason = prompt_tier, f"default:prompt-tier:{prompt_tier}"
    else:
        tier = PLAN_TIERS.get(plan_tier, "haiku")
        reason = f"default:plan:{plan_tier or 'unknown'}"
    if prompt_tokens > settings.LLM_LONG_PROMPT_TOKENS and tier != _step_up(tier):
        tier = _step_up(tier)
        reason += ":long-prompt"
    return _decision(model_for(tier), reason)
