"""Sites allowed to embed the chat widget, their visitors, and which conversations came from which site."""

import re
import secrets
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def _site_key() -> str:
    return secrets.token_urlsafe(9)


def _site_secret() -> str:
    return secrets.token_urlsafe(32)


def origin_normalise(value: str) -> str:
    """`scheme://host[:port]` in lower case, the form browsers send in `Origin`; "" when `value` is not one.

    A default port is dropped (browsers never send it), and a path, query or credentials make it invalid.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return ""
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return ""
    host = parts.hostname.lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class Site(models.Model):
    """A website allowed to embed the widget: the script loads there and the chat frame may be framed there."""

    key = models.CharField(
        max_length=32, unique=True, default=_site_key, editable=False, help_text="Public id in the embed URLs."
    )
    name = models.CharField(max_length=100, help_text="Shown in the widget's header, e.g. 'Acme Help Centre'.")
    origin = models.CharField(
        max_length=200,
        unique=True,
        help_text="Exactly the page's origin: scheme, host and port, e.g. https://help.example.com.",
    )
    colour = models.CharField(max_length=7, default="#1f5fbf", help_text="The widget's accent colour, #rrggbb.")
    secret = models.CharField(
        max_length=64,
        default=_site_secret,
        help_text="Signs customer ids for identity verification (HMAC-SHA256). Keep it on the host's server only.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled: the script, the frame and the chat refuse it.")
    daily_spend_cap_usd = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Model spend per UTC day for this site's chats; empty: settings.WIDGET_SITE_DAILY_SPEND_CAP_USD.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.origin})"

    def clean(self) -> None:
        origin = origin_normalise(self.origin)
        if not origin:
            raise ValidationError(
                {"origin": "An origin is scheme://host[:port], with no path, e.g. https://example.com."}
            )
        self.origin = origin
        if not COLOUR_RE.match(self.colour):
            raise ValidationError({"colour": "A colour is #rrggbb, e.g. #1f5fbf."})


class Visitor(models.Model):
    """Someone who opened the widget on one site. Anonymous visitors chat as an inactive user of their own,
    which has no customer account, so they get public answers only and never anyone's account context."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="visitors")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="widget_visitor",
        help_text="The inactive user that owns the anonymous visitor's conversations.",
    )
    email = models.EmailField(blank=True, help_text="Left by the visitor for a reply.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["site", "-last_seen_at"])]

    def __str__(self) -> str:
        return f"visitor {self.id} on {self.site.name}"


class SiteConversation(models.Model):
    """Which site (and visitor) a conversation was held on: what a site's spend is summed over."""

    conversation = models.OneToOneField("chat.Conversation", on_delete=models.CASCADE, related_name="widget_site")
    conversation_key = models.CharField(
        max_length=36, db_index=True, help_text="str(conversation.id), as the call log stores it."
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="conversations")
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="conversations")
    identified = models.BooleanField(default=False, help_text="Held as a verified customer of the host site.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["site", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.conversation_id} on {self.site_id}"
