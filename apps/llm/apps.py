from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    label = "llm"

    def ready(self) -> None:
        from apps.llm import checks  # noqa: F401  (registers the system checks)
