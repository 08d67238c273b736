"""System checks: models the installed SDK lists as deprecated, named by settings or routing rules.

`manage.py serve` runs these with the database (so the routing rules are read at start-up); a plain
`manage.py check` reads the settings only, as Django asks of checks without `--database`.
"""

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, register
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError

from apps.llm.deprecations import deprecated_models_in, model_deprecation_text


@register("llm")
def deprecated_models_in_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """llm.W001: a tier in LLM_MODELS (LLM_MODEL_HAIKU / _SONNET / _OPUS) is a deprecated model."""
    return [
        CheckWarning(
            f"LLM_MODELS[{tier!r}]: {model_deprecation_text(model)}.",
            hint=f"Set LLM_MODEL_{tier.upper()} to a current model id.",
            id="llm.W001",
        )
        for tier, model in settings.LLM_MODELS.items()
        if deprecated_models_in([model])
    ]


@register("llm", "database")
def deprecated_models_in_routing_rules(
    app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """llm.W002: a routing rule (its model or its fallback chain) names a deprecated model."""
    if not databases:
        return []
    from apps.llm.models import RoutingRule
    from apps.llm.routing import rule_models

    try:
        rules = list(RoutingRule.objects.all())
    except DatabaseError:  # not migrated yet: this check also runs before `migrate`
        return []
    return [
        CheckWarning(
            f"Routing rule {rule.name!r}{'' if rule.enabled else ' (disabled)'}: {model_deprecation_text(model)}.",
            hint="Change the rule's model or fallback chain in the admin (LLM › Routing rules).",
            obj=rule,
            id="llm.W002",
        )
        for rule in rules
        for model in deprecated_models_in(rule_models(rule))
    ]
