"""The action audit in the admin: read-only, every call and decision as it happened."""

from django.contrib import admin

from apps.actions.models import ActionRecord


@admin.register(ActionRecord)
class ActionRecordAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "tool", "risk", "status", "decision", "conversation_id")
    list_filter = ("tool", "risk", "status", "decision")
    search_fields = ("user__username", "conversation_id", "tool", "idempotency_key")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
