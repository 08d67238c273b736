"""Operators browse classifications and batches, and read the daily report as a page with bar charts."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path

from apps.triage.models import ClassificationBatch, ClassificationBatchItem, DailyReport, TranscriptClassification
from apps.triage.reports import report_context, report_csv


class ReadOnlyAdmin(admin.ModelAdmin):
    """The pipeline owns these rows; the admin only shows them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TranscriptClassification)
class TranscriptClassificationAdmin(ReadOnlyAdmin):
    list_display = [
        "conversation_id",
        "for_date",
        "status",
        "category",
        "resolved",
        "sentiment",
        "escalation_needed",
        "language",
        "prompt_version",
        "attempts",
    ]
    list_filter = ["for_date", "status", "category", "resolved", "escalation_needed", "sentiment"]
    search_fields = ["conversation__id", "summary"]
    date_hierarchy = "for_date"
    list_select_related = False


class ClassificationBatchItemInline(admin.TabularInline):
    model = ClassificationBatchItem
    fields = ["custom_id", "attempt", "clarifying", "model", "outcome", "ingested_at", "llm_call"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    max_num = 0


@admin.register(ClassificationBatch)
class ClassificationBatchAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "for_date",
        "status",
        "anthropic_batch_id",
        "request_count",
        "upstream_status",
        "prompt_version",
        "created_at",
        "ingested_at",
    ]
    list_filter = ["status", "for_date"]
    search_fields = ["anthropic_batch_id"]


@admin.register(DailyReport)
class DailyReportAdmin(ReadOnlyAdmin):
    """The change view renders the report itself (server-side SVG bars, no JavaScript)."""

    list_display = ["date", "generated_at", "conversations", "resolution_rate", "total_cost_usd"]
    readonly_fields = ["date", "generated_at"]
    fields = ["date", "generated_at"]

    @admin.display(description="Conversations")
    def conversations(self, obj: DailyReport) -> int:
        return obj.data.get("volumes", {}).get("conversations", 0)

    @admin.display(description="Resolution rate")
    def resolution_rate(self, obj: DailyReport) -> str:
        rate = obj.data.get("resolution", {}).get("rate")
        return "n/a" if rate is None else f"{rate:.0%}"

    @admin.display(description="Cost (USD)")
    def total_cost_usd(self, obj: DailyReport) -> str:
        return obj.data.get("costs", {}).get("total_usd", "")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        report = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if report is not None:
            extra_context["report_context"] = report_context(report.data)
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def get_urls(self) -> list[URLPattern]:
        download = self.admin_site.admin_view(self.csv_view)
        return [path("<path:object_id>/csv/", download, name="triage_dailyreport_csv"), *super().get_urls()]

    def csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The report as the same CSV the nightly job writes and emails, as a download."""
        report = self.get_object(request, object_id)
        if report is None:
            raise Http404("No report with that id.")
        if not self.has_view_permission(request, report):
            raise PermissionDenied
        response = HttpResponse(report_csv(report.data), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="transcript-report-{report.date.isoformat()}.csv"'
        return response
