"""Evaluation sets and cases are edited here; runs are started from a prompt version and read here."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.evaluations.models import Case, CaseResult, EvaluationSet, Run


class CaseInline(admin.StackedInline):
    model = Case
    extra = 0
    fields = [
        "name",
        "tags",
        "plan_tier",
        "account_data",
        "turns",
        ("goal", "persona", "max_turns"),
        ("must_include", "must_not_include"),
        ("language", "expect_handoff"),
        "rubric",
    ]


@admin.register(EvaluationSet)
class EvaluationSetAdmin(admin.ModelAdmin):
    list_display = ["name", "prompt_slug", "case_count", "created_at"]
    inlines = [CaseInline]

    @admin.display(description="Cases")
    def case_count(self, obj: EvaluationSet) -> int:
        return obj.cases.count()


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["name", "evaluation_set", "tags", "plan_tier", "language", "expect_handoff"]
    list_filter = ["evaluation_set", "plan_tier", "language"]
    search_fields = ["name", "tags"]


class CaseResultInline(admin.TabularInline):
    model = CaseResult
    fields = ["case", "version", "attempt", "status", "passed", "answer", "error", "cost_usd"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "evaluation_set", "candidate", "baseline", "mode", "k", "status", "created_at"]
    list_filter = ["status", "mode"]
    readonly_fields = [f.name for f in Run._meta.fields]
    inlines = [CaseResultInline]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # runs start from a prompt version's "Evaluate"
