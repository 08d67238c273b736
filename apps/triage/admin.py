"""Operators browse classifications and batches, and read the daily report as a page with bar charts."""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError
from apps.triage import selectors, services
from apps.triage.models import (
    ClassificationBatch,
    ClassificationBatchItem,
    DailyReport,
    KnowledgeGapDraft,
    TranscriptClassification,
)
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
        "knowledge_gap",
        "gap_topic",
        "cx_score",
        "prompt_version",
        "attempts",
    ]
    list_filter = [
        "for_date",
        "status",
        "category",
        "resolved",
        "escalation_needed",
        "sentiment",
        "knowledge_gap",
        "cx_score",
    ]
    search_fields = ["conversation__id", "summary", "gap_topic"]
    date_hierarchy = "for_date"
    list_select_related = False


@admin.register(KnowledgeGapDraft)
class KnowledgeGapDraftAdmin(ReadOnlyAdmin):
    """What the nightly drafting did per gap topic and day; the article itself is reviewed and published in
    Knowledge base › Articles."""

    list_display = ["topic", "for_date", "status", "conversation_count", "article_link", "attempts", "last_error"]
    list_filter = ["status", "for_date"]
    search_fields = ["topic"]
    date_hierarchy = "for_date"
    fields = [
        "topic",
        "for_date",
        "status",
        "conversation_count",
        "article_link",
        "model",
        "attempts",
        "needs_clarification",
        "last_error",
        "raw_output",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="Article")
    def article_link(self, obj: KnowledgeGapDraft) -> str:
        if obj.article_id is None:
            return "—"
        url = reverse("admin:knowledge_article_change", args=[obj.article_id])
        state = "awaiting review" if obj.article.status == "draft" else obj.article.status
        return format_html('<a href="{}">#{} {}</a> ({})', url, obj.article_id, obj.article.title, state)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("article")


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
        "kind",
        "status",
        "anthropic_batch_id",
        "request_count",
        "upstream_status",
        "prompt_version",
        "created_at",
        "ingested_at",
    ]
    list_filter = ["kind", "status", "for_date"]
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
            data = dict(report.data)
            if "knowledge_gaps" in data:
                # Live, so a group drafted since the report was written shows its article.
                data["knowledge_gaps"] = {
                    **data["knowledge_gaps"],
                    "groups": selectors.knowledge_gap_groups(for_date=report.date),
                }
            extra_context["report_context"] = report_context(data)
            if request.user.has_perm("knowledge.add_article"):
                extra_context["gap_draft_url"] = reverse("admin:triage_dailyreport_gap_draft", args=[report.pk])
            extra_context["gap_article_url"] = reverse("admin:knowledge_article_changelist")
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def get_urls(self) -> list[URLPattern]:
        download = self.admin_site.admin_view(self.csv_view)
        draft = self.admin_site.admin_view(require_POST(self.gap_draft_view))
        return [
            path("<path:object_id>/csv/", download, name="triage_dailyreport_csv"),
            path("<path:object_id>/gaps/draft/", draft, name="triage_dailyreport_gap_draft"),
            *super().get_urls(),
        ]

    def gap_draft_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Turn one knowledge-gap group of the report into a draft article, then open it for editing."""
        report = self.get_object(request, object_id)
        if report is None:
            raise Http404("No report with that id.")
        if not (self.has_view_permission(request, report) and request.user.has_perm("knowledge.add_article")):
            raise PermissionDenied
        try:
            article = services.knowledge_gap_draft_create(
                for_date=report.date, topic=request.POST.get("topic", ""), actor=request.user
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("admin:triage_dailyreport_change", args=[report.pk]))
        messages.success(request, f"Draft article “{article.title}”: write the answer, then publish it.")
        return HttpResponseRedirect(reverse("admin:knowledge_article_change", args=[article.pk]))

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
