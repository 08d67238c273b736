from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "apps.prompts"
    label = "prompts"

    def ready(self) -> None:
        from apps.prompts import checks  # noqa: F401  (registers the system checks)
