from django.apps import AppConfig


class StaffingConfig(AppConfig):
    name = "apps.staffing"
    label = "staffing"
    verbose_name = "Support team availability"
