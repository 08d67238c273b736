"""Sites in admin: which origins may embed the widget, with their name, colour, secret and spend cap."""

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from apps.widget.models import Site, SiteConversation, Visitor


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "origin", "enabled", "colour_swatch", "daily_spend_cap_usd", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "origin", "key")
    readonly_fields = ("key", "embed_snippet", "created_at")
    fields = ("name", "origin", "enabled", "colour", "daily_spend_cap_usd", "secret", "key", "embed_snippet")

    @admin.display(description="Colour")
    def colour_swatch(self, site: Site) -> str:
        return format_html(
            '<span style="background:{};padding:0 1em" title="{}">&nbsp;</span>', site.colour, site.colour
        )

    @admin.display(description="Embed on the site's pages")
    def embed_snippet(self, site: Site) -> str:
        if not site.pk:
            return "Saved sites show their snippet here."
        return format_html(
            '<code>&lt;script src="https://SUPPORT-HOST/widget/{}.js" crossorigin="anonymous" defer&gt;'
            "&lt;/script&gt;</code>",
            site.key,
        )


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ("id", "site", "email", "created_at", "last_seen_at")
    list_filter = ("site",)
    search_fields = ("id", "email")
    readonly_fields = ("id", "site", "user", "created_at", "last_seen_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SiteConversation)
class SiteConversationAdmin(admin.ModelAdmin):
    list_display = ("conversation", "site", "visitor", "identified", "created_at")
    list_filter = ("site", "identified")
    readonly_fields = ("conversation", "conversation_key", "site", "visitor", "identified", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
