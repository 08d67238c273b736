"""Django registration, only so that the `run_upstream` management command is discoverable."""

from django.apps import AppConfig


class UpstreamConfig(AppConfig):
    name = "apps.upstream"
    label = "upstream"
    verbose_name = "Offline Anthropic upstream emulator"
    default_auto_field = "django.db.models.BigAutoField"
