"""The per-version metrics page: /admin/insights/metrics/?prompt=support-assistant&days=7&a=<id>&b=<id>.

Registered through the table-less `Metrics` model so it sits in the admin index under "Insights" and
uses the admin's login, permissions and look. `?format=csv` downloads the table.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.insights import charts, selectors
from apps.insights.models import Metrics
from apps.prompts.models import SUPPORT_ASSISTANT, Prompt

DAY_CHOICES = (1, 7, 14, 30, 90)
DEFAULT_DAYS = 7
MAX_DAYS = 365


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _int_param(request: HttpRequest, name: str, default: int | None) -> int | None:
    try:
        return int(request.GET.get(name, ""))
    except ValueError:
        return default


@admin.register(Metrics)
class MetricsAdmin(admin.ModelAdmin):
    """Only the changelist URL exists; it renders the metrics page instead of a list of rows."""

    def has_view_permission(self, request, obj=None):
        user = request.user
        return (
            user.is_active
            and user.is_staff
            and (user.has_perm("insights.view_metrics") or user.has_perm("prompts.view_promptversion"))
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        from django.urls import path

        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        prompts = list(Prompt.objects.order_by("slug"))
        slug = request.GET.get("prompt") or (
            SUPPORT_ASSISTANT
            if any(p.slug == SUPPORT_ASSISTANT for p in prompts)
            else (prompts[0].slug if prompts else "")
        )
        days = min(max(_int_param(request, "days", DEFAULT_DAYS) or DEFAULT_DAYS, 1), MAX_DAYS)
        until = timezone.now()
        since = until - timedelta(days=days)
        rows = selectors.version_metrics(slug=slug, since=since, until=until)

        if request.GET.get("format") == "csv":
            return self._csv(rows, slug=slug, days=days)

        by_id = {row.version_id: row for row in rows}
        a_id, b_id = _int_param(request, "a", None), _int_param(request, "b", None)
        if a_id not in by_id or b_id not in by_id or a_id == b_id:
            # Default comparison: the two versions with the most calls.
            busiest = sorted(rows, key=lambda r: r.calls, reverse=True)
            if a_id not in by_id:
                a_id = busiest[0].version_id if busiest else None
            if b_id not in by_id or b_id == a_id:
                b_id = next((r.version_id for r in busiest if r.version_id != a_id), None)
        a, b = by_id.get(a_id), by_id.get(b_id)
        comparison = selectors.compare_versions(a, b) if a and b else []

        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Prompt version metrics: {slug or 'no prompts yet'}",
            "prompts": prompts,
            "slug": slug,
            "days": days,
            "day_choices": DAY_CHOICES,
            "since": since,
            "until": until,
            "rows": rows,
            "a": a,
            "b": b,
            "comparison": comparison,
            "charts": self._charts(rows, slug=slug, since=since, until=until),
            "versions_url": _versions_changelist_url(slug),
        }
        return TemplateResponse(request, "admin/insights/metrics.html", context)

    def _charts(self, rows, *, slug: str, since, until) -> list:
        labels = [row.version for row in rows]
        if not rows:
            return []
        figures = [
            charts.bar_chart(
                title="Calls", items=list(zip(labels, [r.calls for r in rows], strict=True)), fmt=lambda v: f"{v:.0f}"
            ),
            charts.bar_chart(
                title="Error rate", items=list(zip(labels, [r.error_rate for r in rows], strict=True)), fmt=_pct
            ),
            charts.bar_chart(
                title="Cost per call (USD)",
                items=list(zip(labels, [_float(r.cost_per_call) for r in rows], strict=True)),
                fmt=lambda v: f"${v:.5f}",
            ),
            charts.bar_chart(
                title="p95 latency (ms)",
                items=list(zip(labels, [r.latency_p95_ms for r in rows], strict=True)),
                fmt=lambda v: f"{v:.0f} ms",
            ),
            charts.bar_chart(
                title="Cache hit rate", items=list(zip(labels, [r.cache_hit_rate for r in rows], strict=True)), fmt=_pct
            ),
            charts.bar_chart(
                title="Thumbs-up rate", items=list(zip(labels, [r.thumbs_up_rate for r in rows], strict=True)), fmt=_pct
            ),
        ]
        daily = selectors.daily_calls(slug=slug, since=since, until=until)
        if daily:
            days = sorted({day for series in daily.values() for day in series})
            figures.append(
                charts.line_chart(
                    title="Calls per day",
                    x_labels=[d.isoformat() for d in days],
                    series={label: [daily[label].get(d, (0, 0))[0] for d in days] for label in sorted(daily)},
                )
            )
        return figures

    def _csv(self, rows, *, slug: str, days: int) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d")
        response["Content-Disposition"] = f'attachment; filename="prompt-metrics-{slug}-{days}d-{stamp}.csv"'
        writer = csv.writer(response)
        writer.writerow(selectors.CSV_COLUMNS)
        for row in rows:
            writer.writerow(selectors.csv_row(row))
        return response


def _float(value) -> float | None:
    return float(value) if value is not None else None


def _versions_changelist_url(slug: str) -> str:
    from django.urls import reverse

    prompt_id = Prompt.objects.filter(slug=slug).values_list("pk", flat=True).first()
    base = reverse("admin:prompts_promptversion_changelist")
    return f"{base}?prompt__id__exact={prompt_id}" if prompt_id else base
