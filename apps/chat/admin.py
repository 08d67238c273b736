"""Read-mostly admin: staff read transcripts and feedback; only a conversation's status is editable."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.chat.models import Conversation, Feedback, Message
from apps.chat.selectors import conversation_get_for_user
from apps.core.exceptions import NotFound


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "role", "status", "text", "model", "prompt_version", "ttft_ms", "latency_ms")
    readonly_fields = fields
    ordering = ("created_at", "id")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "title", "status", "prompt_version", "updated_at")
    list_filter = ("status", "prompt_version")
    search_fields = ("id", "title", "user__username")
    date_hierarchy = "updated_at"
    readonly_fields = ("id", "user", "title", "prompt_version", "summary", "summary_turns", "created_at", "updated_at")
    fields = ("id", "user", "title", "status", "prompt_version", "summary", "summary_turns", "created_at", "updated_at")
    inlines = [MessageInline]
    list_select_related = ("user", "prompt_version")

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Conversation | None:
        # The one access selector, with staff access: admin users read any transcript.
        try:
            return conversation_get_for_user(request.user, object_id, staff_access=True)
        except NotFound:
            return None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "status", "model", "prompt_version", "created_at")
    list_filter = ("role", "status", "model")
    search_fields = ("text", "conversation__id")
    list_select_related = ("conversation",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("message", "user", "rating", "comment", "created_at")
    list_filter = ("rating",)
    search_fields = ("comment", "user__username")
    list_select_related = ("message", "user")
    readonly_fields = ("message", "user", "rating", "comment", "created_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
