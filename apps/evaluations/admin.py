"""Evaluation sets and cases are edited here; runs start from a draft's "Evaluate…" and are read here.

Interfaces only: parse, check the permission, call one service or selector, render.
"""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.core.exceptions import ApplicationError
from apps.evaluations import selectors, services
from apps.evaluations.models import Case, EvaluationSet, Run

RUN_PERM = "evaluations.add_run"
VIEW_PERM = "evaluations.view_run"


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
        ("expect_tool", "expect_tool_arguments"),
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
    list_display = ["name", "evaluation_set", "tags", "plan_tier", "language", "expect_handoff", "expect_tool"]
    list_filter = ["evaluation_set", "plan_tier", "language"]
    search_fields = ["name", "tags"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "evaluation_set", "candidate", "baseline", "mode", "k", "status", "created_at"]
    list_filter = ["status", "mode"]
    list_select_related = ["evaluation_set", "candidate__prompt", "baseline__prompt"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # runs start from a draft's "Evaluate…"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("evaluate/<int:version_id>/", wrap(self.evaluate_view), name="evaluations_run_evaluate"),
            path("<int:object_id>/report/", wrap(self.report_view), name="evaluations_run_report"),
            path("<int:object_id>/csv/", wrap(self.csv_view), name="evaluations_run_csv"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:evaluations_run_report", args=[object_id]))

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def evaluate_view(self, request: HttpRequest, version_id: int) -> HttpResponse:
        from apps.prompts.models import PromptVersion

        if not request.user.has_perm(RUN_PERM):
            raise PermissionDenied
        version = get_object_or_404(PromptVersion.objects.select_related("prompt"), pk=version_id)
        sets = EvaluationSet.objects.filter(prompt_slug=version.prompt.slug)
        error = ""
        if request.method == "POST":
            try:
                evaluation_set = get_object_or_404(sets, pk=int(request.POST.get("evaluation_set") or 0))
                mode = request.POST.get("mode", Run.Mode.BATCH)
                run = services.run_start(
                    evaluation_set=evaluation_set,
                    candidate=version,
                    actor=request.user,
                    mode=mode,
                    k=int(request.POST.get("k") or services.DEFAULT_K),
                )
                if run.mode == Run.Mode.QUICK:
                    run = services.run_quick(run=run)
            except ApplicationError as exc:
                error = exc.message
            except ValueError:
                error = "k must be a whole number."
            else:
                messages.success(request, f"Evaluation run {run.pk} started ({run.get_mode_display()}).")
                return HttpResponseRedirect(reverse("admin:evaluations_run_report", args=[run.pk]))
        context = self._context(
            request,
            f"Evaluate {version}",
            version=version,
            sets=sets,
            error=error,
            default_k=services.DEFAULT_K,
            quick_cases=services.QUICK_CASES,
        )
        return TemplateResponse(request, "admin/evaluations/run/evaluate.html", context)

    def report_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(VIEW_PERM):
            raise PermissionDenied
        report = selectors.run_report(run=selectors.run_get(object_id))
        return TemplateResponse(
            request, "admin/evaluations/run/report.html", self._context(request, str(report.run), report=report)
        )

    def csv_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(VIEW_PERM):
            raise PermissionDenied
        run = selectors.run_get(object_id)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="evaluation-run-{run.pk}.csv"'
        csv.writer(response).writerows(selectors.run_csv_rows(run=run))
        return response
