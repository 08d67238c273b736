from django.contrib import admin, messages

from apps.core.admin import AuditLogAdmin
from apps.llm.deprecations import deprecated_models_in, model_deprecation_text
from apps.llm.models import LLMCall, RoutingRule
from apps.llm.routing import rule_models


@admin.register(LLMCall)
class LLMCallAdmin(AuditLogAdmin):
    """Read-only: the call log is evidence (cost, latency, failures), never edited by hand."""

    list_display = (
        "created_at",
        "task_type",
        "model",
        "status",
        "attempt",
        "fallback_step",
        "prompt_slug",
        "prompt_version",
        "input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "cost_usd",
        "ttft_ms",
        "latency_ms",
    )
    list_filter = ("task_type", "status", "model", "is_batch", "refused", "fallback_step", "prompt_slug", "created_at")
    search_fields = ("conversation_id", "request_id", "prompt_version", "route_reason", "error_type")
    date_hierarchy = "created_at"
    list_per_page = 100


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = (
        "priority",
        "name",
        "enabled",
        "task_type",
        "plan_tier",
        "min_prompt_tokens",
        "max_prompt_tokens",
        "model_tier",
        "model_id",
        "fallback_chain",
    )
    list_display_links = ("name",)
    list_editable = ("priority", "enabled")
    list_filter = ("enabled", "task_type", "plan_tier", "model_tier")
    search_fields = ("name", "notes", "model_id")
    ordering = ("priority", "id")

    def save_model(self, request, obj: RoutingRule, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Saved all the same: the model still answers until its end of life; the admin is told now.
        for model in deprecated_models_in(rule_models(obj)):
            self.message_user(request, f"{model_deprecation_text(model)}.", messages.WARNING)
