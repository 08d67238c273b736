"""The widget's websocket route (supportbot/asgi.py)."""

from django.urls import path

from apps.widget.consumers import WidgetConsumer

websocket_urlpatterns = [
    path("ws/widget/<str:key>/", WidgetConsumer.as_asgi(), name="ws-widget"),
]
