from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.evaluations"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from apps.evaluations.gate import evaluation_blocker
        from apps.prompts.gates import register_publish_check

        register_publish_check("evaluations", evaluation_blocker)
