from django.contrib import admin

from apps.accounts.models import CustomerAccount, Invoice, SupportTicket


class InvoiceInline(admin.TabularInline):
    model = Invoice
    extra = 0


@admin.register(CustomerAccount)
class CustomerAccountAdmin(admin.ModelAdmin):
    list_display = ("user", "plan", "billing_status", "language", "company", "seats")
    list_filter = ("plan", "billing_status")
    search_fields = ("user__username", "user__email", "company")
    inlines = [InvoiceInline]


@admin.register(SupportTicket)
class SupportTicketAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "subject", "status", "source", "conversation_id", "created_at")
    list_filter = ("status", "source")
    search_fields = ("subject", "user__username", "conversation_id")
