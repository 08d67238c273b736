"""Admin for articles and snapshots: edits and the publish actions go through the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from apps.core.exceptions import ApplicationError
from apps.knowledge import services
from apps.knowledge.models import Article, KnowledgeSnapshot


class AwaitingReviewFilter(admin.SimpleListFilter):
    """The candidate articles the nightly knowledge-gap drafting wrote (or staff started from the report) that
    nobody has published yet."""

    title = "review"
    parameter_name = "review"
    GAP_TAG = "knowledge-gap"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("gap-drafts", "Knowledge-gap drafts awaiting review")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Article]) -> QuerySet[Article]:
        if self.value() != "gap-drafts":
            return queryset
        # Tags are a JSON list; containment is not available on SQLite, so match the quoted tag in its text.
        return queryset.filter(status=Article.Status.DRAFT, tags__icontains=f'"{self.GAP_TAG}"')


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "language", "status", "updated_at", "times_cited", "thumbs_up", "thumbs_down"]
    list_filter = [AwaitingReviewFilter, "status", "language"]
    search_fields = ["title", "external_id"]
    readonly_fields = ["created_at", "updated_at", "published_at"]
    fields = ["title", "language", "url", "tags", "status", "external_id", "body", *readonly_fields]
    actions = ["publish_selected", "unpublish_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Article]:
        # One query for the list: citations and the thumbs of the answers that made them, per article.
        return (
            super()
            .get_queryset(request)
            .annotate(
                cited=Count("citations"),
                up=Count("citations", filter=Q(citations__rating="up")),
                down=Count("citations", filter=Q(citations__rating="down")),
            )
        )

    @admin.display(description="Cited", ordering="cited")
    def times_cited(self, article: Article) -> int:
        return article.cited

    @admin.display(description="👍", ordering="up")
    def thumbs_up(self, article: Article) -> int:
        return article.up

    @admin.display(description="👎", ordering="down")
    def thumbs_down(self, article: Article) -> int:
        return article.down

    def save_model(self, request: HttpRequest, obj: Article, form, change: bool) -> None:
        values = {name: getattr(obj, name) for name in services.EDITABLE_FIELDS}
        try:
            if change:
                saved = services.article_update(article=obj, actor=request.user, **values)
            else:
                saved = services.article_create(actor=request.user, **values)
        except ApplicationError as exc:
            errors = "; ".join(f"{k}: {v}" for k, v in exc.extra.get("errors", {}).items())
            self.message_user(request, f"{exc.message} {errors}", messages.ERROR)
            return
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Article) -> None:
        services.article_delete(article=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            services.article_delete(article=article, actor=request.user)

    @admin.action(description="Publish selected articles")
    def publish_selected(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            services.article_publish(article=article, actor=request.user)
        self.message_user(request, f"Published {queryset.count()} article(s); a new snapshot serves them.")

    @admin.action(description="Unpublish selected articles")
    def unpublish_selected(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            services.article_unpublish(article=article, actor=request.user)
        self.message_user(request, f"Unpublished {queryset.count()} article(s).")


@admin.register(KnowledgeSnapshot)
class KnowledgeSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "article_count", "token_estimate", "created_by"]
    readonly_fields = ["created_at", "created_by", "digest", "article_count", "token_estimate", "articles"]
    exclude = ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
