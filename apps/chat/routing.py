"""Websocket routes (wrapped in origin validation and session auth by supportbot/asgi.py)."""

from django.urls import path

from apps.chat.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi(), name="ws-chat"),
]
