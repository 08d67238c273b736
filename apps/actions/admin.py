"""The action audit in the admin: read-only, every call and decision as it happened."""

from django.contrib import admin

from apps.actions.models import ActionRecord
from apps.core.admin import AuditLogAdmin


@admin.register(ActionRecord)
class ActionRecordAdmin(AuditLogAdmin):
    list_display = ("created_at", "user", "tool", "risk", "status", "decision", "conversation_id")
    list_filter = ("tool", "risk", "status", "decision")
    search_fields = ("user__username", "conversation_id", "tool", "idempotency_key")
    date_hierarchy = "created_at"
