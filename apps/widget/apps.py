from django.apps import AppConfig


class WidgetConfig(AppConfig):
    name = "apps.widget"
    label = "widget"
    verbose_name = "Chat widget on other sites"
