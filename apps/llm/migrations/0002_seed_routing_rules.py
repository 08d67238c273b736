"""Seed the default routing rules so admins can see and edit them (they mirror routing.default_route)."""

from django.db import migrations

LONG_PROMPT_TOKENS = 60_000

DEFAULT_RULES = [
    # (priority, name, task_type, plan_tier, min_prompt_tokens, model_tier, notes)
    (
        10,
        "Classification on Haiku",
        "classification",
        "",
        None,
        "haiku",
        "Transcript classification is short structured output: the cheapest tier is enough.",
    ),
    (
        20,
        "History summaries on Haiku",
        "summarisation",
        "",
        None,
        "haiku",
        "Summaries of older chat history, made when a conversation outgrows the context window.",
    ),
    (
        100,
        "Free plan, long prompts",
        "chat",
        "free",
        LONG_PROMPT_TOKENS,
        "sonnet",
        "Very long conversations step up one tier: the smaller model loses track of long context.",
    ),
    (110, "Free plan chat", "chat", "free", None, "haiku", "Free customers are answered by Haiku."),
    (
        200,
        "Pro plan, long prompts",
        "chat",
        "pro",
        LONG_PROMPT_TOKENS,
        "opus",
        "Very long conversations step up one tier.",
    ),
    (210, "Pro plan chat", "chat", "pro", None, "sonnet", "Pro customers are answered by Sonnet."),
    (300, "Enterprise plan chat", "chat", "enterprise", None, "opus", "Enterprise customers are answered by Opus."),
]


def seed(apps, schema_editor):
    RoutingRule = apps.get_model("llm", "RoutingRule")
    for priority, name, task_type, plan_tier, min_tokens, tier, notes in DEFAULT_RULES:
        RoutingRule.objects.get_or_create(
            name=name,
            defaults={
                "priority": priority,
                "task_type": task_type,
                "plan_tier": plan_tier,
                "min_prompt_tokens": min_tokens,
                "model_tier": tier,
                "notes": notes,
            },
        )


def unseed(apps, schema_editor):
    RoutingRule = apps.get_model("llm", "RoutingRule")
    RoutingRule.objects.filter(name__in=[rule[1] for rule in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("llm", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
