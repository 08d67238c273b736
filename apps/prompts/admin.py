"""Prompt management in the Django admin: versions, diffs, previews, publish / roll back / retire.

The admin is an interface: it parses the request, checks the permission, calls one service or
selector and renders. Status changes never happen through the change form, only through the
confirmation pages below, each of which needs `prompts.publish_promptversion`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join

from apps.actions.registry import tool_choices
from apps.core.exceptions import ApplicationError
from apps.prompts import selectors, services
from apps.prompts.gates import publish_blockers
from apps.prompts.models import Prompt, PromptAuditLog, PromptVersion, ReferenceDocument

Status = PromptVersion.Status

PUBLISH_PERM = "prompts.publish_promptversion"
CHANGE_PERM = "prompts.change_promptversion"
ADD_PERM = "prompts.add_promptversion"
VIEW_PERM = "prompts.view_promptversion"

DEFAULT_PREVIEW_USER_TEXT = "Hi, my card was declined on my last invoice. Can you help me pay it?"


def _require(request: HttpRequest, *perms: str) -> None:
    if not all(request.user.has_perm(p) for p in perms):
        raise PermissionDenied


def insights_url(slug: str, **params: Any) -> str:
    """The insights metrics page for a prompt ("" when apps.insights is not installed).

    A URL, not an import: prompts must not depend on insights (insights reads prompts).
    """
    try:
        base = reverse("admin:insights_metrics_changelist")
    except NoReverseMatch:
        return ""
    query = "&".join(f"{k}={v}" for k, v in {"prompt": slug, **params}.items())
    return f"{base}?{query}"


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "active_versions", "metrics_link", "updated_at")
    search_fields = ("slug", "name")
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("versions")

    @admin.display(description="Active versions (weight)")
    def active_versions(self, obj: Prompt) -> str:
        active = [v for v in obj.versions.all() if v.status == Status.ACTIVE]
        return ", ".join(f"{v.version} ({v.weight})" for v in active) or "— none: the prompt cannot serve —"

    @admin.display(description="Metrics")
    def metrics_link(self, obj: Prompt) -> str:
        url = insights_url(obj.slug)
        return format_html('<a href="{}">metrics</a>', url) if url else "—"


class ReferenceDocumentInline(admin.StackedInline):
    model = ReferenceDocument
    extra = 0
    fields = ("position", "title", "body")

    # Documents of a published version are part of its immutable content.
    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and (obj is None or obj.is_draft)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (obj is None or obj.is_draft)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.is_draft)


class PromptVersionForm(forms.ModelForm):
    class Meta:
        model = PromptVersion
        fields = (
            "prompt",
            "major",
            "minor",
            "patch",
            "persona",
            "business_rules",
            "output_format",
            "few_shot_examples",
            "model_tier",
            "max_tokens",
            "cache_ttl",
            "tools",
            "change_note",
        )

    # The choice of tools comes from the actions registry; the version stores plain names.
    tools = forms.MultipleChoiceField(
        choices=tool_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the assistant may do with this version. Confirmation tools ask the customer first.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            for name in ("major", "minor", "patch"):
                if name in self.fields:
                    self.fields[name].required = False
                    self.fields[name].help_text = "Leave all three blank for the next minor version."

    def clean(self):
        cleaned = super().clean()
        prompt = cleaned.get("prompt") or getattr(self.instance, "prompt", None)
        semver = tuple(cleaned.get(n, getattr(self.instance, n, None)) for n in ("major", "minor", "patch"))
        if prompt is not None and None not in semver:
            clash = PromptVersion.objects.filter(prompt=prompt, major=semver[0], minor=semver[1], patch=semver[2])
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                raise forms.ValidationError(f"{prompt.slug} {'.'.join(map(str, semver))} already exists.")
        elif prompt is not None and any(v is not None for v in semver) and self.instance.pk is None:
            raise forms.ValidationError("Give all of major, minor and patch, or none of them.")
        return cleaned


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    form = PromptVersionForm
    inlines = [ReferenceDocumentInline]
    list_display = (
        "prompt",
        "version_label",
        "status",
        "weight",
        "traffic_share",
        "calls_7d",
        "error_rate_7d",
        "cost_per_call_7d",
        "cache_hit_rate_7d",
        "created_by",
        "published_at",
        "row_links",
    )
    list_display_links = ("version_label",)
    list_filter = ("prompt", "status")
    search_fields = ("prompt__slug", "change_note")
    list_select_related = ("prompt", "created_by")
    actions = ["compare_selected", "publish_selected", "rollback_selected", "retire_selected"]
    meta_fields = (
        "status",
        "weight",
        "based_on",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
        "published_by",
        "published_at",
        "retired_at",
    )
    readonly_fields = meta_fields
    change_form_template = "admin/prompts/promptversion/change_form.html"
    change_list_template = "admin/prompts/promptversion/change_list.html"

    fieldsets = (
        (None, {"fields": ("prompt", ("major", "minor", "patch"), "change_note")}),
        (
            "System prompt parts (cached prefix, in this order)",
            {"fields": ("persona", "business_rules", "output_format", "few_shot_examples")},
        ),
        ("Tools (sent before the system prompt: part of the cached prefix)", {"fields": ("tools",)}),
        (
            "Route and limits",
            {
                "fields": ("model_tier", "max_tokens", "cache_ttl"),
                "description": "There is no temperature: API version 2026-10-21 (SDK 2.x) rejects it.",
            },
        ),
        ("Lifecycle", {"fields": meta_fields}),
    )

    # --- queryset, permissions, form ---------------------------------------------------------------

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return selectors.prompt_versions_with_call_summary(queryset, since=selectors.changelist_since())

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("prompt", *self.meta_fields)  # a draft cannot move to another prompt
        return self.meta_fields

    def has_change_permission(self, request, obj=None):
        # Published versions are immutable: their change page is read-only for everyone.
        return super().has_change_permission(request, obj) and (obj is None or obj.is_draft)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.is_draft)

    def save_model(self, request, obj, form, change):
        services.prompt_version_save_draft_form(version=obj, actor=request.user)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        changed = list(form.changed_data)
        if any(formset.has_changed() for formset in formsets):
            changed.append("reference_documents")
        services.prompt_version_audit_form_save(
            version=form.instance, actor=request.user, created=not change, changed=changed
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        version = self.get_object(request, object_id)
        if version is not None:
            extra_context.update(self._object_context(request, version))
        return super().change_view(request, object_id, form_url, extra_context)

    def _object_context(self, request: HttpRequest, version: PromptVersion) -> dict[str, Any]:
        base = version.based_on
        return {
            "version": version,
            "can_publish": request.user.has_perm(PUBLISH_PERM),
            "can_draft": request.user.has_perm(ADD_PERM),
            "suggested_bump": selectors.suggest_bump(base=base, draft=version) if version.is_draft and base else "",
            "metrics_url": insights_url(version.prompt.slug, a=version.pk),
        }

    # --- list columns --------------------------------------------------------------------------------

    @admin.display(description="version", ordering="major")
    def version_label(self, obj: PromptVersion) -> str:
        return obj.version

    @admin.display(description="traffic share")
    def traffic_share(self, obj: PromptVersion) -> str:
        total = getattr(obj, "m_active_weight", None) or 0
        if obj.status != Status.ACTIVE or not total:
            return "—"
        return f"{obj.weight / total:.0%}"

    @admin.display(description="calls (7 d)")
    def calls_7d(self, obj: PromptVersion) -> int:
        return selectors.CallSummary.from_annotated(obj).calls

    @admin.display(description="error rate")
    def error_rate_7d(self, obj: PromptVersion) -> str:
        rate = selectors.CallSummary.from_annotated(obj).error_rate
        return "—" if rate is None else f"{rate:.1%}"

    @admin.display(description="cost / call")
    def cost_per_call_7d(self, obj: PromptVersion) -> str:
        cost = selectors.CallSummary.from_annotated(obj).cost_per_call
        return "—" if cost is None else f"${cost.quantize(Decimal('0.00001'))}"

    @admin.display(description="cache hit rate")
    def cache_hit_rate_7d(self, obj: PromptVersion) -> str:
        rate = selectors.CallSummary.from_annotated(obj).cache_hit_rate
        return "—" if rate is None else f"{rate:.0%}"

    @admin.display(description="")
    def row_links(self, obj: PromptVersion) -> str:
        links = [("preview", self._url("preview", obj.pk))]
        if obj.based_on_id:
            links.append(("diff", f"{self._url('diff')}?a={obj.based_on_id}&b={obj.pk}"))
        if obj.status == Status.DRAFT:
            links.append(("publish…", self._url("publish", obj.pk)))
        elif obj.status == Status.ACTIVE:
            links += [("weight…", self._url("weight", obj.pk)), ("retire…", self._url("retire", obj.pk))]
        else:
            links.append(("roll back…", self._url("rollback", obj.pk)))
        metrics = insights_url(obj.prompt.slug, a=obj.pk)
        if metrics:
            links.append(("metrics", metrics))
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, label) for label, url in links))

    # --- URLs -----------------------------------------------------------------------------------------

    def _url(self, name: str, *args: Any) -> str:
        return reverse(f"admin:prompts_promptversion_{name}", args=args)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        custom = [
            path("diff/", wrap(self.diff_view), name="prompts_promptversion_diff"),
            path("<int:object_id>/publish/", wrap(self.publish_view), name="prompts_promptversion_publish"),
            path("<int:object_id>/rollback/", wrap(self.rollback_view), name="prompts_promptversion_rollback"),
            path("<int:object_id>/retire/", wrap(self.retire_view), name="prompts_promptversion_retire"),
            path("<int:object_id>/weight/", wrap(self.weight_view), name="prompts_promptversion_weight"),
            path("<int:object_id>/new-draft/", wrap(self.new_draft_view), name="prompts_promptversion_new_draft"),
            path("<int:object_id>/preview/", wrap(self.preview_view), name="prompts_promptversion_preview"),
        ]
        return custom + super().get_urls()

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def _version(self, object_id: int) -> PromptVersion:
        return get_object_or_404(PromptVersion.objects.select_related("prompt", "based_on"), pk=object_id)

    def _done(self, request: HttpRequest, version: PromptVersion) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:prompts_promptversion_change", args=[version.pk]))

    # --- status changes (confirmation pages) -----------------------------------------------------------

    def _status_change(self, request: HttpRequest, object_id: int, *, action: str) -> HttpResponse:
        _require(request, PUBLISH_PERM, CHANGE_PERM)
        version = self._version(object_id)
        active = list(PromptVersion.objects.filter(prompt=version.prompt, status=Status.ACTIVE).order_by("pk"))
        form_error = ""
        if request.method == "POST":
            try:
                result = self._apply(request, version, action)
            except ApplicationError as exc:
                form_error = exc.message
            except ValueError:
                form_error = "The weight must be a whole number."
            else:
                messages.success(request, result)
                return self._done(request, version)
        shares = selectors.prompt_traffic_shares(prompt=version.prompt)
        context = self._context(
            request,
            f"{ACTION_TITLES[action]} {version}",
            version=version,
            action=action,
            active_versions=[(v, shares.get(v.pk, 0.0)) for v in active],
            form_error=form_error,
            default_weight=version.weight or services.DEFAULT_PUBLISH_WEIGHT,
            diff_url=f"{self._url('diff')}?a={active[0].pk}&b={version.pk}" if active and active[0] != version else "",
            blockers=publish_blockers(version) if action == "publish" else [],
            override_reason=request.POST.get("override_reason", ""),
            ab=_ab_verdict(version, active) if action in ("publish", "weight") else None,
        )
        return TemplateResponse(request, "admin/prompts/promptversion/confirm_action.html", context)

    def _apply(self, request: HttpRequest, version: PromptVersion, action: str) -> str:
        if action == "publish":
            weight = int(request.POST.get("weight") or services.DEFAULT_PUBLISH_WEIGHT)
            exclusive = request.POST.get("mode", "exclusive") == "exclusive"
            done = services.prompt_version_publish(
                version=version,
                actor=request.user,
                weight=weight,
                exclusive=exclusive,
                override_reason=request.POST.get("override_reason", ""),
            )
            if exclusive:
                self._warn_if_not_significant(request, version)
            return f"Published {done}. New conversations may get it now; running ones keep their version."
        if action == "rollback":
            done = services.prompt_version_rollback(to_version=version, actor=request.user)
            return f"Rolled back to {done}: it now serves all new conversations."
        if action == "retire":
            done = services.prompt_version_retire(version=version, actor=request.user)
            return f"Retired {done}. Conversations already on it continue with it."
        if action == "weight":
            weight = int(request.POST.get("weight", ""))
            done = services.prompt_version_set_weight(version=version, weight=weight, actor=request.user)
            if selectors.prompt_traffic_shares(prompt=done.prompt).get(done.pk, 0.0) >= 1.0:
                self._warn_if_not_significant(request, done)
            return f"{done} now has weight {done.weight}."
        raise ApplicationError(f"Unknown action {action}.")

    def _warn_if_not_significant(self, request: HttpRequest, version: PromptVersion) -> None:
        """Moving a version to all traffic without a significant A/B difference is allowed, but said."""
        others = list(PromptVersion.objects.filter(prompt=version.prompt).exclude(pk=version.pk).order_by("-pk")[:5])
        verdict = _ab_verdict(version, others)
        if verdict is None or not verdict["significant"]:
            messages.warning(
                request,
                f"{version} now serves 100 % of new conversations, but the A/B difference against the other "
                "versions is not statistically significant (two-proportion z-test, 95 %).",
            )

    def publish_view(self, request, object_id):
        return self._status_change(request, object_id, action="publish")

    def rollback_view(self, request, object_id):
        return self._status_change(request, object_id, action="rollback")

    def retire_view(self, request, object_id):
        return self._status_change(request, object_id, action="retire")

    def weight_view(self, request, object_id):
        return self._status_change(request, object_id, action="weight")

    # --- editing a published version = a new draft ---------------------------------------------------

    def new_draft_view(self, request, object_id):
        _require(request, ADD_PERM, CHANGE_PERM)
        version = self._version(object_id)
        if request.method == "POST":
            try:
                draft = services.prompt_version_create_draft(
                    prompt=version.prompt,
                    based_on=version,
                    bump=request.POST.get("bump", "minor"),
                    actor=request.user,
                    change_note=request.POST.get("change_note", ""),
                )
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Created draft {draft} from {version.version}; edit it below.")
                return self._done(request, draft)
        choices = [
            (
                bump,
                ".".join(map(str, services.next_free_semver(prompt=version.prompt, base=version.semver, bump=bump))),
                BUMP_HELP[bump],
            )
            for bump in services.BUMPS
        ]
        context = self._context(request, f"New draft from {version}", version=version, choices=choices)
        return TemplateResponse(request, "admin/prompts/promptversion/new_draft.html", context)

    # --- review ----------------------------------------------------------------------------------------

    def diff_view(self, request):
        _require(request, VIEW_PERM)
        a = self._version(_int(request.GET.get("a")))
        b = self._version(_int(request.GET.get("b")))
        siblings = PromptVersion.objects.filter(prompt=a.prompt).order_by("-major", "-minor", "-patch")
        context = self._context(
            request,
            f"{a.prompt.slug}: {a.version} ↔ {b.version}",
            a=a,
            b=b,
            siblings=siblings,
            diffs=selectors.prompt_version_diff(a=a, b=b),
            suggested_bump=selectors.suggest_bump(base=a, draft=b),
        )
        return TemplateResponse(request, "admin/prompts/promptversion/diff.html", context)

    def preview_view(self, request, object_id):
        _require(request, VIEW_PERM)
        version = selectors.prompt_version_get(version_id=object_id)
        user_text = request.GET.get("user_text") or DEFAULT_PREVIEW_USER_TEXT
        username, account_context = _sample_account_context(request.GET.get("username", ""))
        compare_to = None
        if request.GET.get("compare_to"):
            compare_to = self._version(_int(request.GET["compare_to"]))
        preview = selectors.prompt_version_preview(
            version=version, sample_user_text=user_text, account_context=account_context, compare_to=compare_to
        )
        result = preview.result
        context = self._context(
            request,
            f"Preview {version}",
            version=version,
            user_text=user_text,
            username=username,
            account_context=account_context,
            preview=preview,
            result=result,
            params_json=json.dumps(result.params, indent=2, ensure_ascii=False) if result is not None else "",
            compare_to=compare_to or version.based_on,
            siblings=PromptVersion.objects.filter(prompt=version.prompt).exclude(pk=version.pk),
        )
        return TemplateResponse(request, "admin/prompts/promptversion/preview.html", context)

    # --- changelist actions: each leads to the page above for one version --------------------------------

    def _single(self, request, queryset, name: str):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.WARNING)
            return None
        return HttpResponseRedirect(self._url(name, queryset.get().pk))

    @admin.action(description="Compare the two selected versions")
    def compare_selected(self, request, queryset):
        if queryset.count() != 2:
            self.message_user(request, "Select exactly two versions to compare.", messages.WARNING)
            return None
        a, b = sorted(queryset, key=lambda v: v.semver)
        return HttpResponseRedirect(f"{self._url('diff')}?a={a.pk}&b={b.pk}")

    @admin.action(description="Publish the selected draft…", permissions=["publish"])
    def publish_selected(self, request, queryset):
        return self._single(request, queryset, "publish")

    @admin.action(description="Roll back to the selected version…", permissions=["publish"])
    def rollback_selected(self, request, queryset):
        return self._single(request, queryset, "rollback")

    @admin.action(description="Retire the selected version…", permissions=["publish"])
    def retire_selected(self, request, queryset):
        return self._single(request, queryset, "retire")

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm(PUBLISH_PERM)


ACTION_TITLES = {
    "publish": "Publish",
    "rollback": "Roll back to",
    "retire": "Retire",
    "weight": "Set traffic weight of",
}
BUMP_HELP = {
    "major": "the output format or contract changes (parsers, the classifier's JSON consumers must adapt)",
    "minor": "behaviour changes: persona, rules, reference documents, examples, route or limits",
    "patch": "wording and typo fixes that should not change behaviour",
}


AB_WINDOW_DAYS = 14
AB_RATES = ("resolved", "thumbs_up", "errors")


def _ab_verdict(version: PromptVersion, active: list[PromptVersion]) -> dict[str, Any] | None:
    """The A/B z-test (apps.insights) of `version` against the busiest other version over the last
    AB_WINDOW_DAYS: rows per rate, and whether any outcome rate differs significantly. None without one."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.insights import selectors as insights

    until = timezone.now()
    metrics = {
        m.version_id: m
        for m in insights.version_metrics(
            slug=version.prompt.slug, since=until - timedelta(days=AB_WINDOW_DAYS), until=until
        )
    }
    others = [metrics[v.pk] for v in active if v.pk != version.pk and v.pk in metrics]
    mine = metrics.get(version.pk)
    if mine is None or not others:
        return None
    other = max(others, key=lambda m: (m.weight, m.version_id))
    rows = [c for c in insights.compare_versions(other, mine) if c.name in AB_RATES]
    return {"against": other.version, "rows": rows, "significant": any(c.significant for c in rows)}


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return 0  # → 404 from get_object_or_404


def _sample_account_context(username: str) -> tuple[str, str]:
    """(username, rendered context) for the preview's sample user turn: a real customer's, or a stand-in."""
    from django.contrib.auth import get_user_model

    from apps.accounts.selectors import AccountContext, account_context_for_user

    user_model = get_user_model()
    user = None
    if username:
        user = user_model.objects.filter(username=username).first()
    if user is None:
        user = user_model.objects.filter(customer_account__isnull=False).order_by("username").first()
    if user is not None:
        return user.get_username(), account_context_for_user(user).render()
    sample = AccountContext(
        username="sample-customer",
        plan_tier="pro",
        billing_status="active",
        language="en",
        company="Example Ltd",
        seats=3,
        invoices=(),
        open_tickets=(),
    )
    return sample.username, sample.render()


@admin.register(PromptAuditLog)
class PromptAuditLogAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "prompt_slug",
        "version_label",
        "action",
        "from_status",
        "to_status",
        "actor",
        "detail_text",
    )
    list_filter = ("action", "prompt_slug")
    search_fields = ("prompt_slug", "version_label", "actor__username")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)

    @admin.display(description="detail")
    def detail_text(self, obj: PromptAuditLog) -> str:
        return json.dumps(obj.detail, ensure_ascii=False, sort_keys=True)

    # Append-only: nobody edits or deletes history through the admin.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
