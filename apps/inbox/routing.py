"""The inbox's websocket route (wrapped like the chat's by supportbot/asgi.py)."""

from django.urls import path

from apps.inbox.consumers import InboxConsumer

websocket_urlpatterns = [
    path("ws/inbox/", InboxConsumer.as_asgi(), name="ws-inbox"),
]
